//! Test support: descriptors that record when they are closed.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

/// A stand-in for a descriptor: dropping it appends its id to a shared log.
#[derive(Debug)]
pub struct Tok {
    pub id: u32,
    log: Rc<RefCell<Vec<u32>>>,
}

impl Drop for Tok {
    fn drop(&mut self) {
        self.log.borrow_mut().push(self.id);
    }
}

/// The log of closed tokens.
#[derive(Debug, Clone, Default)]
pub struct DropLog(Rc<RefCell<Vec<u32>>>);

impl DropLog {
    pub fn new() -> DropLog {
        DropLog::default()
    }

    /// A fresh token with this id.
    pub fn tok(&self, id: u32) -> Tok {
        Tok {
            id,
            log: Rc::clone(&self.0),
        }
    }

    /// The ids dropped since the last call, in drop order.
    pub fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}
