//! [`Gguf`]: an opened GGUF file, its metadata, tensor infos and bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::dequant::dequantize_into;
use super::error::GgufError;
use super::parse::parse;
use super::types::GgmlType;
use super::value::Value;

/// One tensor's entry in the GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the innermost (fastest varying) dimension.
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the data section.
    pub offset: u64,
    /// Bytes of data (checked at open to lie within the file).
    pub(crate) n_bytes: usize,
}

impl TensorInfo {
    /// The number of elements (the product of the dims; 1 for a scalar).
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }

    /// The number of bytes of the tensor's data.
    pub fn n_bytes(&self) -> usize {
        self.n_bytes
    }

    /// The row-major shape: `dims` reversed (ggml `[576, 49152]` is `[49152, 576]`).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

/// A GGUF file read whole into memory, header parsed and checked.
#[derive(Debug)]
pub struct Gguf {
    path: PathBuf,
    version: u32,
    metadata: Vec<(String, Value)>,
    keys: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    names: HashMap<String, usize>,
    alignment: u64,
    data_start: usize,
    bytes: Vec<u8>,
}

impl Gguf {
    /// Reads and parses the file at `path`.
    pub fn open(path: &Path) -> Result<Gguf, GgufError> {
        let bytes = std::fs::read(path).map_err(|source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Gguf::from_bytes(path, bytes)
    }

    /// Parses `bytes` as a GGUF file; `path` only names it in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Gguf, GgufError> {
        let p = parse(&bytes, path)?;
        let keys = (p.metadata.iter().enumerate())
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let names = (p.tensors.iter().enumerate())
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Gguf {
            path: path.to_path_buf(),
            version: p.version,
            metadata: p.metadata,
            keys,
            tensors: p.tensors,
            names,
            alignment: p.alignment,
            data_start: p.data_start,
            bytes,
        })
    }

    /// The file the reader was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data section alignment (`general.alignment`, else 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// The byte offset in the file where the data section starts.
    pub fn data_offset(&self) -> usize {
        self.data_start
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.keys.get(key).map(|&i| &self.metadata[i].1)
    }

    fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &Value) -> GgufError {
        let found = match found {
            Value::Array(a) => format!("an array of {} values", a.len()),
            Value::Str(s) if s.len() > 40 => "a string".to_string(),
            v => format!("{} {v}", v.type_name()),
        };
        GgufError::WrongType {
            path: self.path.clone(),
            key: key.to_string(),
            expected,
            found,
        }
    }

    /// An integer value of any integer type, as `u64` (negative values are refused).
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_i128()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| self.wrong_type(key, "a non-negative integer", v))
    }

    /// A float value (float32 or float64) or an integer, as `f64`.
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.require(key)?;
        v.as_f64()
            .ok_or_else(|| self.wrong_type(key, "a number", v))
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str()
            .ok_or_else(|| self.wrong_type(key, "a string", v))
    }

    /// An array value of any element type.
    pub fn get_array(&self, key: &str) -> Result<&[Value], GgufError> {
        let v = self.require(key)?;
        v.as_array()
            .ok_or_else(|| self.wrong_type(key, "an array", v))
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let items = self.get_array(key)?;
        let strings: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
        strings.ok_or_else(|| {
            let first = items.iter().find(|v| v.as_str().is_none());
            let found = first.map_or("a non-string", Value::type_name);
            GgufError::WrongType {
                path: self.path.clone(),
                key: key.to_string(),
                expected: "an array of strings",
                found: format!("an array of {found} values"),
            }
        })
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.names.get(name).map(|&i| &self.tensors[i])
    }

    fn require_tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        })
    }

    /// The raw bytes of tensor `name` (ggml blocks, as stored).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], GgufError> {
        let t = self.require_tensor(name)?;
        // In range: checked at open.
        let start = self.data_start + t.offset as usize;
        Ok(&self.bytes[start..start + t.n_bytes])
    }

    /// De-quantized to f32, row-major with the shape reversed from ggml order
    /// (a ggml [ne0=576, ne1=49152] tensor comes back as shape [49152, 576]).
    ///
    /// Handles F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K; any other type is a
    /// [`GgufError::UnsupportedType`] naming the type and the tensor.
    pub fn dequantize(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), GgufError> {
        let t = self.require_tensor(name)?;
        let unsupported = || GgufError::UnsupportedType {
            path: self.path.clone(),
            tensor: name.to_string(),
            ggml_type: t.ggml_type,
        };
        if !t.ggml_type.can_dequantize() {
            return Err(unsupported());
        }
        let mut out = vec![0f32; t.n_elements()];
        if !dequantize_into(t.ggml_type, self.tensor_bytes(name)?, &mut out) {
            // Unreachable: the type is supported and open checked the sizes.
            return Err(unsupported());
        }
        Ok((t.shape(), out))
    }
}
