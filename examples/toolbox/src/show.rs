//! How file metadata is shown by `ls -l` and `tar -tv`: mode strings
//! (`drwxr-xr-x`, or `d?????????` where WASI has no modes) and times
//! (`2024-05-01 12:00`, UTC: a step has no time zone).

use std::fs::{FileType, Metadata};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file-type letter of `ls -l`.
pub(crate) fn type_char(kind: FileType) -> char {
    if kind.is_dir() {
        'd'
    } else if kind.is_symlink() {
        'l'
    } else if kind.is_file() {
        '-'
    } else {
        '?'
    }
}

/// `rwxr-xr-x` for the permission bits (with setuid, setgid and sticky as
/// `s`, `s`, `t`), `?????????` when they are unknown.
pub(crate) fn permissions(mode: Option<u32>) -> String {
    let Some(mode) = mode else {
        return "?????????".into();
    };
    let mut out = String::with_capacity(9);
    for (shift, special, letter) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

/// Seconds since the epoch of a file's modification time (negative before
/// 1970), 0 when the platform has none.
pub(crate) fn mtime(meta: &Metadata) -> i64 {
    meta.modified().map(seconds).unwrap_or(0)
}

/// Seconds since the epoch of `t`.
pub(crate) fn seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub(crate) fn date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day number (0 = 1970-01-01), counting
/// in 400-year eras of 146097 days that start on March 1st, so the leap day
/// falls at the end of each year of the era.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_and_handle_leap_years() {
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(951_782_400), "2000-02-29 00:00");
        assert_eq!(date(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(date(-1), "1969-12-31 23:59");
        assert_eq!(date(4_107_542_400), "2100-03-01 00:00");
    }

    #[test]
    fn permissions_show_special_bits_and_unknowns() {
        assert_eq!(permissions(Some(0o755)), "rwxr-xr-x");
        assert_eq!(permissions(Some(0o4644)), "rwSr--r--");
        assert_eq!(permissions(Some(0o1777)), "rwxrwxrwt");
        assert_eq!(permissions(None), "?????????");
    }
}
