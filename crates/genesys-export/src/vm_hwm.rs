//! The peak resident set size in a `/proc/<pid>/status` text.
//!
//! Private to the program; the end-to-end tests and the memory benchmark include this very
//! file (`#[path]`) to read a child's peak the same way, so it is no public API.

/// Parses the `VmHWM:   1234 kB` line of a `/proc/<pid>/status` text, in bytes.
pub(crate) fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_parsed_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2 * 1024 * 1024));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
    }
}
