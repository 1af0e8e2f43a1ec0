//! The check every metrics label table gets (test builds only): an enum whose values
//! metrics count by label lists one value of each kind in `ALL`, in the order metrics
//! writes them; `index` must give each one's position there and `name` a label no other
//! kind shares.

/// Fails unless `index(all[i]) == i` for every `i` and the names in `all` are distinct.
pub fn assert_consistent<T: Copy>(all: &[T], index: fn(T) -> usize, name: fn(T) -> &'static str) {
    for (i, &v) in all.iter().enumerate() {
        assert_eq!(index(v), i, "index of {:?}", name(v));
    }
    let mut names: Vec<&'static str> = all.iter().map(|&v| name(v)).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "labels repeat");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "index of")]
    fn a_wrong_index_fails() {
        assert_consistent(&[1u8, 2], |v| v as usize, |_| "x");
    }

    #[test]
    #[should_panic(expected = "labels repeat")]
    fn a_repeated_label_fails() {
        assert_consistent(&[0u8, 1], |v| v as usize, |_| "x");
    }
}
