//! How a value travels through the shared tier: a codec trait and its implementations.

use std::error::Error;

use crate::{KeyCodec, Plain};

/// The error of a value that cannot be encoded.
pub type EncodeError = Box<dyn Error + Send + Sync>;

/// Turns values into the bytes the [shared tier](crate::SharedTier) stores in Redis, and back.
///
/// Every process of a namespace must use the same codec for its values (or codecs that read
/// each other's bytes). A value that fails to encode is not shared: its loader's callers
/// still get it, the lease is released, and [`SharedStats::not_shared`](crate::SharedStats)
/// counts it. Bytes that fail to decode (another codec, another version of `V`) are a miss,
/// counted in [`SharedStats::decode_failures`](crate::SharedStats): the process loads the
/// value from the source itself and stores nothing. Neither ever panics the memo.
///
/// Implemented by [`Plain`] for the types it encodes as keys (strings, byte vectors,
/// integers), and, with the `serde` feature, by `Json` (JSON text) and `Postcard` (a compact
/// binary form) for any serde type.
///
/// # Examples
///
/// ```
/// use async_memo_redis::{EncodeError, ValueCodec};
///
/// struct Celsius;
/// impl ValueCodec<f64> for Celsius {
///     fn encode(&self, value: &f64, out: &mut Vec<u8>) -> Result<(), EncodeError> {
///         out.extend_from_slice(&value.to_be_bytes());
///         Ok(())
///     }
///     fn decode(&self, bytes: &[u8]) -> Option<f64> {
///         Some(f64::from_be_bytes(bytes.try_into().ok()?))
///     }
/// }
///
/// let mut bytes = Vec::new();
/// Celsius.encode(&21.5, &mut bytes)?;
/// assert_eq!(Celsius.decode(&bytes), Some(21.5));
/// # Ok::<(), EncodeError>(())
/// ```
pub trait ValueCodec<V>: Send + Sync + 'static {
    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    ///
    /// The value has no encoding (a serde `Serialize` that reports an error, say).
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// The value `bytes` encode, or `None` if they encode none.
    fn decode(&self, bytes: &[u8]) -> Option<V>;
}

/// Values as [`Plain`] encodes keys: strings as UTF-8, byte vectors as they are, integers as
/// decimal text (readable in `redis-cli`).
///
/// ```
/// use async_memo_redis::{Plain, ValueCodec};
///
/// let mut bytes = Vec::new();
/// ValueCodec::<u64>::encode(&Plain, &42, &mut bytes).unwrap();
/// assert_eq!(bytes, b"42");
/// assert_eq!(ValueCodec::<u64>::decode(&Plain, b"42"), Some(42));
/// ```
impl<V> ValueCodec<V> for Plain
where
    Plain: KeyCodec<V>,
{
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        KeyCodec::encode(self, value, out);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Option<V> {
        KeyCodec::decode(self, bytes)
    }
}

/// Values as JSON text, for any serde type.
#[cfg(feature = "serde")]
impl<V> ValueCodec<V> for crate::Json
where
    V: serde::Serialize + serde::de::DeserializeOwned,
{
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        serde_json::to_writer(out, value).map_err(Into::into)
    }

    fn decode(&self, bytes: &[u8]) -> Option<V> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Values in postcard's compact binary form (variable-length integers, no field names), for
/// any serde type: a fraction of JSON's size and time for structs of numbers. The format has
/// no field names or type tags, so every process of a namespace must use the same definition
/// of `V`; bytes of another definition usually fail to decode (a miss), but can decode into a
/// wrong value if the layouts happen to agree — change the namespace when `V` changes.
///
/// Needs the `serde` feature.
///
/// # Examples
///
/// ```
/// use async_memo_redis::{Postcard, ValueCodec};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct User { id: u64, name: String }
///
/// let user = User { id: 7, name: "Ada".into() };
/// let mut bytes = Vec::new();
/// Postcard.encode(&user, &mut bytes)?;
/// assert_eq!(bytes.len(), 5, "one byte for 7, one for the length, three for the name");
/// assert_eq!(Postcard.decode(&bytes), Some(user));
/// # Ok::<(), async_memo_redis::EncodeError>(())
/// ```
#[cfg(feature = "serde")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

#[cfg(feature = "serde")]
impl<V> ValueCodec<V> for Postcard
where
    V: serde::Serialize + serde::de::DeserializeOwned,
{
    fn encode(&self, value: &V, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let bytes = postcard::to_allocvec(value)?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Option<V> {
        postcard::from_bytes(bytes).ok()
    }
}
