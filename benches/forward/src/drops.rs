//! The `dut_drops` column: every drop counter that moved in xvpc's final counters.
//!
//! The daemon prints its final counters as one JSON document on stdout when it stops. Every
//! non-zero number whose path (keys and list indices joined by `.`) contains `drop` or
//! `ring_full`, case-insensitively, is listed as `path=value`, joined by `;`, in document
//! order. The walk streams through the document, so order is kept without a map type that
//! preserves it.
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The drop list of a final-counters document, or `unreadable:<why>` when it does not parse
/// (the daemon crashed, or printed nothing).
pub fn drop_counters(json: &str) -> String {
    let mut path = Vec::new();
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(json);
    let walked = Walk {
        path: &mut path,
        out: &mut out,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match walked {
        Ok(()) => out.join(";"),
        Err(e) => format!("unreadable:{e}"),
    }
}

struct Walk<'a> {
    path: &'a mut Vec<String>,
    out: &'a mut Vec<String>,
}

impl Walk<'_> {
    fn number(self, v: impl fmt::Display, zero: bool) {
        if zero {
            return;
        }
        let p = self.path.join(".");
        let lower = p.to_lowercase();
        if lower.contains("drop") || lower.contains("ring_full") {
            self.out.push(format!("{p}={v}"));
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            self.path.push(k);
            map.next_value_seed(Walk {
                path: self.path,
                out: self.out,
            })?;
            self.path.pop();
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            self.path.push(i.to_string());
            let more = seq.next_element_seed(Walk {
                path: self.path,
                out: self.out,
            })?;
            self.path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.number(v, v == 0);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.number(v, v == 0);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.number(v, v == 0.0);
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_moved_drop_counters_in_document_order() {
        let doc = r#"{
            "workers": [
                {"rx": 10, "drops": {"no_mapping": 3, "bad_vni": 0, "Short_Frame": 2},
                 "tx_ring_full": 7, "name": "drop-me-not"},
                {"rx": 0, "drops": {"no_mapping": 0}, "fill_ring_full": 0}
            ],
            "dropped_total": 5, "zeta_drop": -1, "ratio_drop": 0.5, "ok": true, "n": null
        }"#;
        assert_eq!(
            drop_counters(doc),
            "workers.0.drops.no_mapping=3;workers.0.drops.Short_Frame=2;workers.0.tx_ring_full=7;\
             dropped_total=5;zeta_drop=-1;ratio_drop=0.5"
        );
        assert_eq!(drop_counters(r#"{"drops": {"a": 0}}"#), "");
    }

    #[test]
    fn an_unreadable_document_says_so() {
        assert!(
            drop_counters("").starts_with("unreadable:"),
            "{}",
            drop_counters("")
        );
        assert!(drop_counters("{\"drops\": 1").starts_with("unreadable:"));
        assert!(drop_counters("{} {}").starts_with("unreadable:"));
    }
}
