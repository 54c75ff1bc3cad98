//! A reader for GGUF model files (the llama.cpp / ggml format) and de-quantization of their
//! tensors to f32.
//!
//! # Format
//! A GGUF file is, little-endian throughout: the magic `GGUF`; a u32 version (2 or 3 are
//! read, version 1's 32-bit counts and big-endian files are refused with an error saying
//! so); u64 tensor and metadata counts; the metadata, each a key string (u64 length +
//! UTF-8 bytes), a u32 value type and the value (uint8..int64, float32/64, bool, string, or
//! a typed array: element type, u64 length, elements, arrays may nest); the tensor infos,
//! each a name, a u32 dimension count (at most 4), u64 dims (innermost first), a u32 ggml
//! type and a u64 data offset; then, after padding to `general.alignment` (default 32),
//! the data section the offsets point into.
//!
//! [`Gguf::open`] reads the whole file (no mmap) and checks everything before returning:
//! every length and count against the bytes left (so a corrupt count cannot cause a huge
//! allocation), duplicate keys or tensor names, the alignment (a power of two), each
//! tensor's innermost dimension being a whole number of blocks and its data lying inside
//! the file at an aligned offset. A bad file is a [`GgufError::Malformed`] naming the file,
//! the byte offset and what was being read; no input makes it panic.
//!
//! # De-quantization
//! [`Gguf::dequantize`] handles F32, F16, BF16, Q8_0, Q4_0, Q4_1 (blocks of 32), Q4_K and
//! Q6_K (super-blocks of 256), following ggml's reference kernels operation for operation
//! (results equal gguf-py's `gguf.quants.dequantize` bit for bit; `tests/gguf/`). Any
//! other ggml type (Q5_0, Q5_1, Q8_1, Q2_K, Q3_K, Q5_K, Q8_K, the IQ and TQ types, MXFP4,
//! I8..I64, F64) is a [`GgufError::UnsupportedType`] naming the type and the tensor; an
//! unknown type number is refused at open.

mod cursor;
mod dequant;
mod error;
mod file;
mod parse;
mod types;
mod value;

pub use dequant::{bf16_to_f32, f16_to_f32};
pub use error::GgufError;
pub use file::{Gguf, TensorInfo};
pub use types::{GgmlType, DEQUANTIZABLE};
pub use value::Value;
