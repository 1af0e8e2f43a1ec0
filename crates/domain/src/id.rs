//! correlationIds: 128-bit UUIDs, held as `u128` and written in their hyphenated form.

/// Appends the hyphenated lowercase form of a UUID.
pub fn write_uuid(out: &mut Vec<u8>, id: u128) {
    let mut buf = uuid::Uuid::encode_buffer();
    out.extend_from_slice(
        uuid::Uuid::from_u128(id)
            .hyphenated()
            .encode_lower(&mut buf)
            .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_hyphenated_lowercase_form() {
        let mut out = Vec::new();
        write_uuid(&mut out, 0x4A7901B8_7D26_4D9D_AA19_4DC1C7CF60B3);
        assert_eq!(out, b"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3");
    }
}
