//! A panic inside a stage is contained: the stage fails with the panic's message and where it
//! happened, its work folder is removed, and the run goes on (or stops) as `--keep-going` says.
//! Without this, a worker thread that panicked never reported back and `run` waited forever.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// A contained panic.
#[derive(Debug, Clone)]
pub struct Panic {
    /// `stage panicked at FILE:LINE:COL: MESSAGE`.
    pub message: String,
    /// The backtrace, when `RUST_BACKTRACE` asked for one.
    pub backtrace: Option<String>,
}

/// Where a panic happened (`file:line:col`) and its backtrace.
type Caught = (Option<String>, Option<String>);

thread_local! {
    /// How many `contain` calls this thread is inside.
    static CONTAINING: Cell<usize> = const { Cell::new(0) };
    /// Where the last contained panic of this thread happened, and its backtrace.
    static CAUGHT: RefCell<Option<Caught>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Wrap the panic hook once: a panic inside `contain` is recorded (place, backtrace) rather
/// than printed, since it is reported as the stage's failure; any other goes to the hook that
/// was there before.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CONTAINING.with(Cell::get) == 0 {
                return previous(info);
            }
            let at = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let bt = std::backtrace::Backtrace::capture();
            let bt =
                (bt.status() == std::backtrace::BacktraceStatus::Captured).then(|| bt.to_string());
            CAUGHT.with(|c| *c.borrow_mut() = Some((at, bt)));
        }));
    });
}

/// Run `f`; a panic becomes `Err` with its message.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, Panic> {
    install_hook();
    CONTAINING.with(|c| c.set(c.get() + 1));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(c.get() - 1));
    r.map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let (at, backtrace) = CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_default();
        let message = match at {
            Some(at) => format!("stage panicked at {at}: {what}"),
            None => format!("stage panicked: {what}"),
        };
        Panic { message, backtrace }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_place() {
        let p = contain(|| -> u32 { panic!("boom {}", 7) }).unwrap_err();
        assert!(
            p.message
                .starts_with("stage panicked at src/exec/panics.rs:")
                && p.message.ends_with(": boom 7"),
            "{}",
            p.message
        );
        let p = contain(|| -> u32 { std::panic::panic_any(3u8) }).unwrap_err();
        assert!(p.message.ends_with(": (no message)"), "{}", p.message);
        assert_eq!(contain(|| 5).unwrap(), 5);
        // nested: the inner one catches
        let r = contain(|| contain(|| -> u32 { panic!("inner") }).is_err()).unwrap();
        assert!(r);
    }
}
