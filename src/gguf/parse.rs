//! Parsing the GGUF header, metadata and tensor infos (format versions 2 and 3).

use std::collections::HashMap;
use std::path::Path;

use super::cursor::{Ctx, Cursor};
use super::error::GgufError;
use super::types::GgmlType;
use super::value::Value;
use super::TensorInfo;

/// Arrays nested deeper than this are refused (a guard against stack exhaustion).
const MAX_ARRAY_DEPTH: usize = 32;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;
/// The data section alignment when `general.alignment` is absent.
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;

/// Everything the header describes; the tensor data stays in the file's bytes.
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Where the data section starts (tensor offsets are relative to it).
    pub data_start: usize,
}

pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Parsed, GgufError> {
    let mut c = Cursor::new(bytes, path);
    let header = || "header".to_string();
    let magic = c.take(4, &header, "magic")?;
    if magic != b"GGUF" {
        return Err(c.error(
            0,
            &header,
            format!("not a GGUF file: the magic is {magic:02x?}, expected `GGUF`"),
        ));
    }
    let version = c.u32(&header, "version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(c.error(
                4,
                &header,
                "GGUF version 1 is not supported (only 2 and 3)".into(),
            ))
        }
        v if matches!(v.swap_bytes(), 1..=3) => {
            return Err(c.error(
                4,
                &header,
                format!(
                    "the file is big-endian (version reads as {v:#x}); only little-endian \
                     GGUF is supported"
                ),
            ))
        }
        v => {
            return Err(c.error(
                4,
                &header,
                format!("unknown GGUF version {v} (only 2 and 3 are supported)"),
            ))
        }
    }
    let n_tensors = c.u64(&header, "tensor count")?;
    let n_kv = c.u64(&header, "metadata key count")?;
    // A key/value takes at least 8 + 1 + 4 + 1 bytes, a tensor info at least 8 + 1 + 4 + 4 + 8.
    check_count(&c, 8, n_kv, 14, &header, "metadata key count")?;
    check_count(&c, 16, n_tensors, 25, &header, "tensor count")?;

    let mut metadata = Vec::with_capacity(n_kv as usize);
    let mut keys: HashMap<String, usize> = HashMap::with_capacity(n_kv as usize);
    let mut value_at = Vec::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key_ctx = || format!("metadata key {i}");
        let key_at = c.pos();
        let key = c.string(&key_ctx)?;
        let ctx = || format!("metadata key {i} `{key}`");
        if let Some(first) = keys.get(&key) {
            return Err(c.error(key_at, &ctx, format!("duplicate key (also key {first})")));
        }
        value_at.push(c.pos());
        let ty = c.u32(&ctx, "value type")?;
        if value_type(ty).is_none() {
            return Err(c.error(c.pos() - 4, &ctx, format!("unknown value type {ty}")));
        }
        let value = read_value(&mut c, ty, &ctx, 0)?;
        keys.insert(key.clone(), metadata.len());
        metadata.push((key, value));
    }

    let alignment = match keys.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(&i) => {
            let ctx = || format!("metadata key {i} `general.alignment`");
            match metadata[i].1.as_i128() {
                Some(a) if a > 0 && (a as u64).is_power_of_two() && a <= u32::MAX as i128 => {
                    a as u64
                }
                _ => {
                    return Err(c.error(
                        value_at[i],
                        &ctx,
                        format!(
                            "the alignment must be a power of two integer, found {} {}",
                            metadata[i].1.type_name(),
                            metadata[i].1
                        ),
                    ))
                }
            }
        }
    };

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
    let mut names: HashMap<String, usize> = HashMap::with_capacity(n_tensors as usize);
    let mut offset_at = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name_ctx = || format!("tensor info {i}");
        let name_at = c.pos();
        let name = c.string(&name_ctx)?;
        let ctx = || format!("tensor info {i} `{name}`");
        if let Some(first) = names.get(&name) {
            return Err(c.error(
                name_at,
                &ctx,
                format!("duplicate tensor name (also tensor {first})"),
            ));
        }
        let dims_at = c.pos();
        let n_dims = c.u32(&ctx, "dimension count")?;
        if n_dims > MAX_DIMS {
            return Err(c.error(
                dims_at,
                &ctx,
                format!("{n_dims} dimensions, ggml allows at most {MAX_DIMS}"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let at = c.pos();
            let d = c.u64(&ctx, "dimension")?;
            let d = usize::try_from(d)
                .ok()
                .filter(|&d| d <= i64::MAX as usize)
                .ok_or_else(|| c.error(at, &ctx, format!("dimension {d} is too large")))?;
            dims.push(d);
        }
        let type_at = c.pos();
        let type_id = c.u32(&ctx, "ggml type")?;
        let ggml_type = GgmlType::from_id(type_id)
            .ok_or_else(|| c.error(type_at, &ctx, format!("unknown ggml type {type_id}")))?;
        let n_elements = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let inner = dims.first().copied().unwrap_or(1);
        let block = ggml_type.block_size();
        let n_bytes = match n_elements {
            None => None,
            Some(_) if !inner.is_multiple_of(block) => {
                return Err(c.error(
                    dims_at,
                    &ctx,
                    format!(
                        "the innermost dimension {inner} is not a multiple of the {} block \
                         size {block}",
                        ggml_type.name()
                    ),
                ))
            }
            Some(n) => (n / block).checked_mul(ggml_type.type_size()),
        };
        let Some(n_bytes) = n_bytes else {
            return Err(c.error(dims_at, &ctx, format!("the shape {dims:?} overflows")));
        };
        offset_at.push(c.pos());
        let offset = c.u64(&ctx, "data offset")?;
        names.insert(name.clone(), tensors.len());
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_bytes,
        });
    }

    let data_start = c.pos().next_multiple_of(alignment as usize);
    for (i, t) in tensors.iter().enumerate() {
        let ctx = || format!("tensor info {i} `{}`", t.name);
        if !t.offset.is_multiple_of(alignment) {
            return Err(c.error(
                offset_at[i],
                &ctx,
                format!(
                    "data offset {} is not a multiple of the alignment {alignment}",
                    t.offset
                ),
            ));
        }
        let end = (data_start as u64)
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.n_bytes as u64));
        if end.is_none_or(|e| e > bytes.len() as u64) {
            return Err(c.error(
                offset_at[i],
                &ctx,
                format!(
                    "{} bytes of data at offset {} from the data section (byte {data_start}) \
                     run past the end of the file ({} bytes)",
                    t.n_bytes,
                    t.offset,
                    bytes.len()
                ),
            ));
        }
    }
    Ok(Parsed {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

/// Refuses a count whose items (each at least `min_size` bytes) cannot fit in what is left.
fn check_count(
    c: &Cursor,
    count_size: usize,
    count: u64,
    min_size: u64,
    ctx: Ctx,
    field: &str,
) -> Result<(), GgufError> {
    let left = c.remaining() as u64;
    if count.saturating_mul(min_size) > left {
        return Err(c.error(
            c.pos() - count_size,
            ctx,
            format!(
                "{field} {count} cannot fit in the {left} bytes left (each takes at least \
                 {min_size} bytes)"
            ),
        ));
    }
    Ok(())
}

/// The GGUF name of value type `ty`, and the least bytes one value of it takes.
fn value_type(ty: u32) -> Option<(&'static str, u64)> {
    Some(match ty {
        0 => ("uint8", 1),
        1 => ("int8", 1),
        2 => ("uint16", 2),
        3 => ("int16", 2),
        4 => ("uint32", 4),
        5 => ("int32", 4),
        6 => ("float32", 4),
        7 => ("bool", 1),
        8 => ("string", 8),
        9 => ("array", 12),
        10 => ("uint64", 8),
        11 => ("int64", 8),
        12 => ("float64", 8),
        _ => return None,
    })
}

fn read_value(c: &mut Cursor, ty: u32, ctx: Ctx, depth: usize) -> Result<Value, GgufError> {
    let at = c.pos();
    Ok(match ty {
        0 => Value::U8(c.u8(ctx, "uint8")?),
        1 => Value::I8(c.u8(ctx, "int8")? as i8),
        2 => Value::U16(c.u16(ctx, "uint16")?),
        3 => Value::I16(c.u16(ctx, "int16")? as i16),
        4 => Value::U32(c.u32(ctx, "uint32")?),
        5 => Value::I32(c.u32(ctx, "int32")? as i32),
        6 => Value::F32(f32::from_bits(c.u32(ctx, "float32")?)),
        7 => match c.u8(ctx, "bool")? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => return Err(c.error(at, ctx, format!("bool byte is {b}, expected 0 or 1"))),
        },
        8 => Value::Str(c.string(ctx)?),
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(c.error(
                    at,
                    ctx,
                    format!("arrays nested deeper than {MAX_ARRAY_DEPTH} levels"),
                ));
            }
            let elem = c.u32(ctx, "array element type")?;
            let Some((name, min_size)) = value_type(elem) else {
                return Err(c.error(at, ctx, format!("unknown array element type {elem}")));
            };
            let count = c.u64(ctx, "array length")?;
            let left = c.remaining() as u64;
            if count.saturating_mul(min_size) > left {
                return Err(c.error(
                    at + 4,
                    ctx,
                    format!(
                        "array of {count} {name} values runs past the end of the file \
                         ({left} bytes left)"
                    ),
                ));
            }
            let mut items = Vec::with_capacity(count as usize);
            for j in 0..count {
                let item_ctx = || format!("{}, element {j}", ctx());
                items.push(read_value(c, elem, &item_ctx, depth + 1)?);
            }
            Value::Array(items)
        }
        10 => Value::U64(c.u64(ctx, "uint64")?),
        11 => Value::I64(c.u64(ctx, "int64")? as i64),
        12 => Value::F64(f64::from_bits(c.u64(ctx, "float64")?)),
        t => return Err(c.error(at, ctx, format!("unknown value type {t}"))),
    })
}
