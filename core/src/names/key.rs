//! `key_segment`: text escaped into one store-key segment, injectively and case-free, so no
//! two names share a key even on a file system that ignores case.

use sha2::{Digest, Sha256};

/// Longest escaped key segment kept readable; longer ones are hashed (file systems cap a
/// path segment at 255 bytes, S3 keys at 1024).
const MAX_KEY_SEGMENT: usize = 180;

/// Escapes text into one store-key segment made only of lowercase letters, digits and
/// `-._~+`, injectively and case-free:
/// - lowercase letters, digits, `-`, `_`, `~` stay; `.` stays except in first position;
/// - an uppercase letter becomes `+` and its lowercase (`J` → `+j`);
/// - any other byte (and a leading `.`) becomes `+` and two lowercase hex digits (`(` →
///   `+28`): a digit follows `+` only in this form, a letter only in the one above;
/// - an escaped segment longer than `MAX_KEY_SEGMENT` keeps a readable head and ends in
///   `+-` and the sha256 of the whole escaped segment; `+-` appears in no other form.
pub fn key_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(char::from(b)),
            b'.' if i > 0 => out.push('.'),
            b'A'..=b'Z' => {
                out.push('+');
                out.push(char::from(b.to_ascii_lowercase()));
            }
            _ => {
                out.push('+');
                out.push_str(&format!("{b:02x}"));
            }
        }
    }
    if out.len() <= MAX_KEY_SEGMENT {
        return out;
    }
    let digest = hex::encode(Sha256::digest(out.as_bytes()));
    // Every byte of `out` is ASCII, so any cut is a char boundary.
    format!("{}+-{digest}", &out[..64])
}
