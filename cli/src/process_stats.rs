//! Figures about the running process, read from procfs (Linux only).

/// Peak resident set size of this process in bytes (`VmHWM`), when procfs is available.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, "VmHWM:").map(|kib| kib * 1024)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vmhwm_line() {
        let status = "Name:\tcanopy\nVmHWM:\t   51234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(51_234));
        assert_eq!(parse_status_kib(status, "VmPeak:"), None);
    }

    #[test]
    fn reads_own_peak_rss() {
        let bytes = peak_rss_bytes().expect("procfs is available on Linux");
        assert!(bytes > 1024 * 1024, "a test process uses more than 1 MiB: {bytes}");
    }
}
