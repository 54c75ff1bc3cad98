//! The ggml tensor types a GGUF file may name, with their block layouts.

use std::fmt;

/// A ggml tensor type, by its number in the GGUF tensor info (ggml's `enum ggml_type`).
///
/// Every type ggml defines is named here so that the reader can size its data and give a
/// clear error; only some can be de-quantized (see [`GgmlType::can_dequantize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    Iq2Xxs,
    Iq2Xs,
    Iq3Xxs,
    Iq1S,
    Iq4Nl,
    Iq3S,
    Iq2S,
    Iq4Xs,
    I8,
    I16,
    I32,
    I64,
    F64,
    Iq1M,
    Bf16,
    Tq1_0,
    Tq2_0,
    Mxfp4,
}

/// Elements in a K-quant super-block.
const QK_K: usize = 256;

/// (type, ggml number, ggml name, elements per block, bytes per block), from ggml's
/// `type_traits` (the same table as gguf-py's `GGML_QUANT_SIZES`).
const TABLE: [(GgmlType, u32, &str, usize, usize); 32] = [
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 2 + 16),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 2 + 2 + 16),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 2 + 4 + 16),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 2 + 2 + 4 + 16),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 2 + 32),
    (GgmlType::Q8_1, 9, "Q8_1", 32, 4 + 4 + 32),
    (
        GgmlType::Q2K,
        10,
        "Q2_K",
        QK_K,
        2 + 2 + QK_K / 16 + QK_K / 4,
    ),
    (
        GgmlType::Q3K,
        11,
        "Q3_K",
        QK_K,
        2 + QK_K / 4 + QK_K / 8 + 12,
    ),
    (GgmlType::Q4K, 12, "Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12),
    (
        GgmlType::Q5K,
        13,
        "Q5_K",
        QK_K,
        2 + 2 + QK_K / 2 + QK_K / 8 + 12,
    ),
    (
        GgmlType::Q6K,
        14,
        "Q6_K",
        QK_K,
        2 + QK_K / 2 + QK_K / 4 + QK_K / 16,
    ),
    (GgmlType::Q8K, 15, "Q8_K", QK_K, 4 + QK_K + QK_K / 8),
    (GgmlType::Iq2Xxs, 16, "IQ2_XXS", QK_K, 2 + QK_K / 4),
    (
        GgmlType::Iq2Xs,
        17,
        "IQ2_XS",
        QK_K,
        2 + QK_K / 4 + QK_K / 32,
    ),
    (
        GgmlType::Iq3Xxs,
        18,
        "IQ3_XXS",
        QK_K,
        2 + QK_K / 4 + QK_K / 8,
    ),
    (GgmlType::Iq1S, 19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16),
    (GgmlType::Iq4Nl, 20, "IQ4_NL", 32, 2 + 16),
    (
        GgmlType::Iq3S,
        21,
        "IQ3_S",
        QK_K,
        2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4,
    ),
    (GgmlType::Iq2S, 22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16),
    (
        GgmlType::Iq4Xs,
        23,
        "IQ4_XS",
        QK_K,
        2 + 2 + QK_K / 2 + QK_K / 64,
    ),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (
        GgmlType::Iq1M,
        29,
        "IQ1_M",
        QK_K,
        QK_K / 8 + QK_K / 16 + QK_K / 32,
    ),
    (GgmlType::Bf16, 30, "BF16", 1, 2),
    (GgmlType::Tq1_0, 34, "TQ1_0", QK_K, 2 + 4 * 13),
    (GgmlType::Tq2_0, 35, "TQ2_0", QK_K, 2 + 64),
    (GgmlType::Mxfp4, 39, "MXFP4", 32, 1 + 16),
];

/// The types [`crate::gguf::Gguf::dequantize`] handles, as listed in its errors.
pub const DEQUANTIZABLE: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q4K,
    GgmlType::Q6K,
];

impl GgmlType {
    /// The type with ggml number `id`, or `None` for a number ggml does not define here.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|row| row.1 == id).map(|row| row.0)
    }

    fn row(self) -> &'static (GgmlType, u32, &'static str, usize, usize) {
        // Every variant has exactly one row (tested below), so the search always succeeds;
        // the fallback row is never taken.
        TABLE.iter().find(|row| row.0 == self).unwrap_or(&TABLE[0])
    }

    /// ggml's number for the type.
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// ggml's name for the type (`Q4_K`, `IQ2_XS`, `BF16`).
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Elements per block (1 for plain types, 32 or 256 for quantized ones).
    pub fn block_size(self) -> usize {
        self.row().3
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.row().4
    }

    /// Whether [`crate::gguf::Gguf::dequantize`] handles this type.
    pub fn can_dequantize(self) -> bool {
        DEQUANTIZABLE.contains(&self)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_one_row_and_round_trips_its_id() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(
                TABLE.iter().filter(|r| r.0 == row.0).count(),
                1,
                "{}",
                row.2
            );
            assert_eq!(
                TABLE.iter().filter(|r| r.1 == row.1).count(),
                1,
                "{}",
                row.2
            );
            assert_eq!(GgmlType::from_id(row.1), Some(row.0));
            assert_eq!(row.0.name(), row.2, "row {i}");
        }
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(GgmlType::from_id(1000), None);
        assert_eq!(GgmlType::Q6K.to_string(), "Q6_K (14)");
    }
}
