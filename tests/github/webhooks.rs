//! The webhook receiver end to end (written next).
