//! Reading ipvsadm-save lines for `-R` (ipvsadm's `config_stream_read`).

/// Split one input line into words: whitespace separated, everything from `#` on ignored, and
/// the words `ipvsadm` / `rvsadm` dropped so that both bare rules and full commands work.
pub fn restore_words(line: &str) -> Vec<String> {
    let content = line.split('#').next().unwrap_or("");
    content
        .split_whitespace()
        .filter(|w| *w != "ipvsadm" && *w != "rvsadm")
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(
            restore_words("-A -t 10.0.0.1:80 -s rr\n"),
            vec!["-A", "-t", "10.0.0.1:80", "-s", "rr"]
        );
        assert_eq!(restore_words("ipvsadm -C # flush"), vec!["-C"]);
        assert!(restore_words("   # only a comment").is_empty());
        assert!(restore_words("").is_empty());
    }
}
