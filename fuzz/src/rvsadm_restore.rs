//! rvsadm's restore-file reader (`-R`, `ipvsadm-restore`): the input as a file of lines, each
//! split by `restore_words` and parsed by `parse_restore_args_with` (names from a fixed table),
//! with the checks of [`crate::rvsadm_args`]. A nested `-R` must be refused.

use rvsadm::restore::restore_words;
use rvsadm::{parse_restore_args_with, Action};

/// Runs the target.
pub fn target(data: &[u8]) {
    let names = crate::rvsadm_args::resolver();
    for line in String::from_utf8_lossy(data).lines() {
        let words = restore_words(line);
        if words.is_empty() {
            continue;
        }
        assert!(words.iter().all(|w| !w.contains('#') && w != "ipvsadm"));
        let r = parse_restore_args_with(&words, &names);
        assert!(
            !matches!(r, Ok(Action::Restore)),
            "nested -R accepted: {line}"
        );
        crate::rvsadm_args::check(r);
    }
}
