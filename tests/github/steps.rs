//! Step kinds and branch builds on GitHub (written next).
