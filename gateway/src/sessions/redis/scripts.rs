//! The store's Lua scripts, one `.lua` file each in `scripts/` (each file
//! says its KEYS, ARGV and answer). Every operation that reads and writes
//! one user's keys is one script, so it is atomic on the server whatever
//! the number of replicas racing; the shared functions (`redeemable`,
//! `reused`, and `idle.lua`'s) are prepended to the scripts that call them.

use redis::Script;

const BEGIN: &str = include_str!("scripts/begin.lua");
const REISSUE: &str = include_str!("scripts/reissue.lua");
const REDEEMABLE: &str = include_str!("scripts/redeemable.lua");
const REUSED: &str = include_str!("scripts/reused.lua");
const IDLE: &str = include_str!("scripts/idle.lua");
const REDEEM: &str = include_str!("scripts/redeem.lua");
const CHECK: &str = include_str!("scripts/check.lua");
const END: &str = include_str!("scripts/end.lua");
const SET_FIELD: &str = include_str!("scripts/set_field.lua");
const LIST: &str = include_str!("scripts/list.lua");

/// The Lua scripts, with their hashes.
pub struct Scripts {
    pub begin: Script,
    pub check: Script,
    pub redeem: Script,
    pub reissue: Script,
    pub end: Script,
    pub set_field: Script,
    pub list: Script,
}

impl Scripts {
    /// Every script, with its hash computed once.
    pub fn load() -> Scripts {
        Scripts {
            begin: Script::new(&format!("{IDLE}{BEGIN}")),
            check: Script::new(&format!("{REDEEMABLE}{REUSED}{IDLE}{CHECK}")),
            redeem: Script::new(&format!("{REDEEMABLE}{REUSED}{IDLE}{REDEEM}")),
            reissue: Script::new(&format!("{IDLE}{REISSUE}")),
            end: Script::new(&format!("{REDEEMABLE}{IDLE}{END}")),
            set_field: Script::new(SET_FIELD),
            list: Script::new(LIST),
        }
    }
}
