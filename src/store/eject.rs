//! The partial train a veto leaves to depart (SPEC §15), kept until it has.

use super::{Result, Store};
use crate::domain::eject::Intent;

const EJECT_INTENT: &str = "eject_intent";

impl Store {
    pub fn eject_intent(&self) -> Result<Option<Intent>> {
        self.get_meta(EJECT_INTENT)
    }

    pub fn set_eject_intent(&self, intent: Option<&Intent>) -> Result<()> {
        self.writable()?;
        self.put_meta(EJECT_INTENT, intent)
    }
}
