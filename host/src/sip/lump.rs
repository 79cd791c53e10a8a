//! Edits to a received message as "lumps": deletions and insertions at buffer offsets,
//! applied once when the message is sent, never by re-printing the message.

use bytes::Bytes;

use super::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Lump {
    Insert { at: u32, seq: u32, data: Bytes },
    Delete { span: Span, seq: u32 },
}

impl Lump {
    fn key(&self) -> (u32, u8, u32) {
        match self {
            Lump::Insert { at, seq, .. } => (*at, 0, *seq),
            Lump::Delete { span, seq } => (span.start, 1, *seq),
        }
    }
}

/// A set of edits against one buffer.
#[derive(Clone, Debug, Default)]
pub struct Lumps {
    items: Vec<Lump>,
    seq: u32,
}

impl Lumps {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Inserts `data` at offset `at`; several inserts at one offset keep their order.
    pub fn insert(&mut self, at: usize, data: impl Into<Bytes>) {
        self.seq += 1;
        self.items.push(Lump::Insert {
            at: at as u32,
            seq: self.seq,
            data: data.into(),
        });
    }

    /// The current point in the edit sequence, for [`Lumps::insert_at_mark`].
    pub fn mark(&self) -> u32 {
        self.seq
    }

    /// Inserts `data` at `at` as if it had been inserted when `mark` was taken: it comes
    /// after the inserts at that offset made before the mark and before those made after
    /// it (a Record-Route rendered at send time keeps its place among the script's edits).
    pub fn insert_at_mark(&mut self, at: usize, mark: u32, data: impl Into<Bytes>) {
        self.items.push(Lump::Insert {
            at: at as u32,
            seq: mark,
            data: data.into(),
        });
    }

    pub fn delete(&mut self, span: Span) {
        self.seq += 1;
        self.items.push(Lump::Delete {
            span,
            seq: self.seq,
        });
    }

    pub fn replace(&mut self, span: Span, data: impl Into<Bytes>) {
        self.insert(span.start as usize, data);
        self.delete(span);
    }

    /// How many bytes the edits add (or remove, negative) at offsets `from..` (the body,
    /// when `from` is where it starts: an insert exactly there counts as body).
    pub fn delta_from(&self, from: usize) -> isize {
        self.items
            .iter()
            .map(|l| match l {
                Lump::Insert { at, data, .. } if *at as usize >= from => data.len() as isize,
                Lump::Delete { span, .. } if span.end as usize > from => {
                    let s = (span.start as usize).max(from);
                    -((span.end as usize - s) as isize)
                }
                _ => 0,
            })
            .sum()
    }

    /// True when a deletion covers any byte of `span`.
    pub fn deletes_within(&self, span: Span) -> bool {
        self.items.iter().any(|l| match l {
            Lump::Delete { span: d, .. } => d.start < span.end && span.start < d.end,
            _ => false,
        })
    }

    /// Builds the edited message. Overlapping deletions are merged; an insertion inside a
    /// deleted range is kept at the start of that range.
    pub fn apply(&self, buf: &[u8]) -> Vec<u8> {
        let extra: usize = self
            .items
            .iter()
            .map(|l| match l {
                Lump::Insert { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        let mut out = Vec::with_capacity(buf.len() + extra);
        let mut items: Vec<&Lump> = self.items.iter().collect();
        items.sort_by_key(|l| l.key());
        let mut cursor = 0usize;
        for l in items {
            match l {
                Lump::Insert { at, data, .. } => {
                    let at = (*at as usize).min(buf.len());
                    if at > cursor {
                        out.extend_from_slice(&buf[cursor..at]);
                        cursor = at;
                    }
                    out.extend_from_slice(data);
                }
                Lump::Delete { span, .. } => {
                    let (s, e) = (
                        (span.start as usize).min(buf.len()),
                        (span.end as usize).min(buf.len()),
                    );
                    if s > cursor {
                        out.extend_from_slice(&buf[cursor..s]);
                    }
                    cursor = cursor.max(e);
                }
            }
        }
        if cursor < buf.len() {
            out.extend_from_slice(&buf[cursor..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_delete_replace() {
        let buf = b"0123456789";
        let mut l = Lumps::default();
        l.insert(0, Bytes::from_static(b"A"));
        l.insert(0, Bytes::from_static(b"B"));
        l.delete(Span::new(2, 4));
        l.replace(Span::new(6, 8), Bytes::from_static(b"xy-z"));
        l.insert(10, Bytes::from_static(b"!"));
        assert_eq!(l.apply(buf), b"AB0145xy-z89!");
    }

    #[test]
    fn body_delta() {
        let mut l = Lumps::default();
        l.insert(2, Bytes::from_static(b"hdr"));
        l.insert(5, Bytes::from_static(b"body+"));
        l.delete(Span::new(4, 7));
        assert_eq!(l.delta_from(5), 5 - 2);
    }

    #[test]
    fn insert_at_mark_keeps_creation_order() {
        let mut l = Lumps::default();
        l.insert(1, Bytes::from_static(b"a"));
        let m = l.mark();
        l.insert(1, Bytes::from_static(b"c"));
        l.insert_at_mark(1, m, Bytes::from_static(b"b"));
        assert_eq!(l.apply(b"01"), b"0abc1");
        let mut l = Lumps::default();
        let m = l.mark();
        l.insert(0, Bytes::from_static(b"y"));
        l.insert_at_mark(0, m, Bytes::from_static(b"x"));
        assert_eq!(l.apply(b"0"), b"xy0");
    }

    #[test]
    fn overlapping_deletes() {
        let mut l = Lumps::default();
        l.delete(Span::new(1, 5));
        l.delete(Span::new(3, 7));
        assert_eq!(l.apply(b"0123456789"), b"0789");
    }
}
