//! How a key travels in a log record: a small codec trait and its implementations.

/// Turns keys into the bytes a log record carries, and back.
///
/// Every process of a namespace must use the same codec. A record whose key does not decode
/// (a process with another codec, or a hand-written record) cannot be applied to one key, so
/// the reader invalidates the whole memo instead and counts a reset: nothing stays stale. A
/// `decode` that panics is treated the same way.
///
/// Implemented by [`Plain`] for `String`, `Vec<u8>` and the integer types, and by `Json` for
/// any serde type (feature `serde`).
///
/// # Examples
///
/// A codec for a key type of your own:
///
/// ```
/// use async_memo_redis::KeyCodec;
///
/// #[derive(Clone, Hash, PartialEq, Eq, Debug)]
/// struct UserId(u32);
///
/// struct UserIds;
/// impl KeyCodec<UserId> for UserIds {
///     fn encode(&self, key: &UserId, out: &mut Vec<u8>) {
///         out.extend_from_slice(&key.0.to_be_bytes());
///     }
///     fn decode(&self, bytes: &[u8]) -> Option<UserId> {
///         Some(UserId(u32::from_be_bytes(bytes.try_into().ok()?)))
///     }
/// }
///
/// let mut bytes = Vec::new();
/// UserIds.encode(&UserId(7), &mut bytes);
/// assert_eq!(UserIds.decode(&bytes), Some(UserId(7)));
/// ```
pub trait KeyCodec<K>: Send + Sync + 'static {
    /// Appends the encoding of `key` to `out`.
    fn encode(&self, key: &K, out: &mut Vec<u8>);

    /// The key `bytes` encode, or `None` if they encode none.
    fn decode(&self, bytes: &[u8]) -> Option<K>;
}

/// The codec for strings (as UTF-8), byte vectors (as they are) and integers (as decimal
/// text, readable in `redis-cli`).
///
/// # Examples
///
/// ```
/// use async_memo_redis::{KeyCodec, Plain};
///
/// let mut bytes = Vec::new();
/// Plain.encode(&-42i64, &mut bytes);
/// assert_eq!(bytes, b"-42");
/// assert_eq!(KeyCodec::<i64>::decode(&Plain, b"-42"), Some(-42));
/// assert_eq!(KeyCodec::<u8>::decode(&Plain, b"300"), None, "out of range");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl KeyCodec<String> for Plain {
    fn encode(&self, key: &String, out: &mut Vec<u8>) {
        out.extend_from_slice(key.as_bytes());
    }

    fn decode(&self, bytes: &[u8]) -> Option<String> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

impl KeyCodec<Vec<u8>> for Plain {
    fn encode(&self, key: &Vec<u8>, out: &mut Vec<u8>) {
        out.extend_from_slice(key);
    }

    fn decode(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        Some(bytes.to_vec())
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl KeyCodec<$t> for Plain {
            fn encode(&self, key: &$t, out: &mut Vec<u8>) {
                out.extend_from_slice(key.to_string().as_bytes());
            }

            fn decode(&self, bytes: &[u8]) -> Option<$t> {
                std::str::from_utf8(bytes).ok()?.parse().ok()
            }
        }
    )*};
}

integers!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

/// The codec for any key type that serde can serialize and deserialize, as JSON text.
///
/// Two keys that are equal must serialize to the same JSON (true for derived
/// implementations; beware of maps with unordered iteration).
///
/// # Panics
///
/// `encode` panics if the key's `Serialize` implementation reports an error (a map whose keys
/// are not strings, say): such a key has no JSON form to publish.
///
/// # Examples
///
/// ```
/// use async_memo_redis::{Json, KeyCodec};
///
/// #[derive(serde::Serialize, serde::Deserialize, Clone, Hash, PartialEq, Eq, Debug)]
/// struct Query { table: String, id: u64 }
///
/// let key = Query { table: "users".into(), id: 7 };
/// let mut bytes = Vec::new();
/// Json.encode(&key, &mut bytes);
/// assert_eq!(Json.decode(&bytes), Some(key));
/// ```
#[cfg(feature = "serde")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

#[cfg(feature = "serde")]
impl<K> KeyCodec<K> for Json
where
    K: serde::Serialize + serde::de::DeserializeOwned,
{
    fn encode(&self, key: &K, out: &mut Vec<u8>) {
        // Serializing into a Vec fails only for a Serialize impl that reports an error itself
        // (a map with non-string keys, say); such a key cannot be sent at all.
        serde_json::to_writer(out, key).expect("the key serializes to JSON");
    }

    fn decode(&self, bytes: &[u8]) -> Option<K> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<K: PartialEq + std::fmt::Debug>(key: K)
    where
        Plain: KeyCodec<K>,
    {
        let mut out = Vec::new();
        Plain.encode(&key, &mut out);
        assert_eq!(Plain.decode(&out), Some(key));
    }

    #[test]
    fn plain_round_trips_the_extremes() {
        round_trip(String::new());
        round_trip("ключ".to_string());
        round_trip(vec![0u8, 255, 10]);
        round_trip(u128::MAX);
        round_trip(i128::MIN);
        round_trip(0usize);
        assert_eq!(KeyCodec::<String>::decode(&Plain, &[0xff]), None);
        assert_eq!(KeyCodec::<u64>::decode(&Plain, b""), None);
    }
}
