//! Whole numbers from JSON as JSON Schema counts them: `3` and `3.0` are both the integer 3, so
//! a field documented `"type": "integer"` takes either. A fraction or a number out of the
//! field's range is refused. For `#[serde(deserialize_with = …)]`.

use std::fmt;

use serde::{
    Deserializer,
    de::{self, SeqAccess, Visitor},
};

/// The largest whole number a JSON float holds exactly (2^53).
const EXACT: f64 = 9_007_199_254_740_992.0;

struct Whole<T>(std::marker::PhantomData<T>);

impl<'de, T: TryFrom<u64>> Visitor<'de> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number in range")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        T::try_from(n).map_err(|_| E::custom(format!("{n} is out of range")))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        let n = u64::try_from(n).map_err(|_| E::custom(format!("{n} is below 0")))?;
        self.visit_u64(n)
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<T, E> {
        if n.fract() != 0.0 || !(0.0..=EXACT).contains(&n) {
            return Err(E::custom(format!("{n} is not a whole number in range")));
        }
        // Whole and within 2^53: the conversion is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.visit_u64(n as u64)
    }
}

/// One whole number.
///
/// # Errors
/// A fraction, a negative number or one out of `T`'s range.
pub fn one<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Whole(std::marker::PhantomData))
}

/// A whole number or `null`.
///
/// # Errors
/// As [`one`].
pub fn option<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    struct Maybe<T>(std::marker::PhantomData<T>);
    impl<'de, T: TryFrom<u64>> Visitor<'de> for Maybe<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a whole number or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            one(d).map(Some)
        }
    }
    d.deserialize_option(Maybe(std::marker::PhantomData))
}

/// An array of whole numbers.
///
/// # Errors
/// Not an array, or an element as [`one`] refuses it.
pub fn vec<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Each<T>(std::marker::PhantomData<T>);
    impl<'de, T: TryFrom<u64>> Visitor<'de> for Each<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of whole numbers")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            struct Element<T>(T);
            impl<'de, T: TryFrom<u64>> serde::Deserialize<'de> for Element<T> {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    one(d).map(Element)
                }
            }
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(Element(n)) = seq.next_element::<Element<T>>()? {
                out.push(n);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Each(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::one")]
        n: u32,
        #[serde(default, deserialize_with = "super::option")]
        maybe: Option<u64>,
        #[serde(default, deserialize_with = "super::vec")]
        many: Vec<u64>,
    }

    fn parse(text: &str) -> serde_json::Result<Body> {
        serde_json::from_str(text)
    }

    #[test]
    fn whole_numbers_are_taken_in_either_spelling_and_nothing_else() {
        let body = parse(r#"{"n": 3.0, "maybe": 7, "many": [1, 2.0, 9007199254740992]}"#).unwrap();
        assert_eq!((body.n, body.maybe), (3, Some(7)));
        assert_eq!(body.many, [1, 2, 9_007_199_254_740_992]);
        assert_eq!(parse(r#"{"n": 1, "maybe": null}"#).unwrap().maybe, None);
        // Read exactly, not rounded to a neighbour (serde_json's float_roundtrip).
        let big = parse(r#"{"n": 1, "many": [3858947028214402.0]}"#).unwrap();
        assert_eq!(big.many, [3_858_947_028_214_402]);
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 1, "many": [1, 0.5]}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
