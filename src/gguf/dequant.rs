//! De-quantization of ggml blocks to f32, following ggml's `dequantize_row_*` (ggml-quants.c)
//! operation for operation, so that results equal ggml's and gguf-py's bit for bit.

use super::types::GgmlType;

/// The f32 value of an IEEE half (exact: every f16 is an f32).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match exp {
        // Zero or subnormal: man * 2^-24, exact in f32.
        0 => (man as f32 * (1.0 / 16_777_216.0)).to_bits(),
        // Infinity or NaN (payload kept).
        31 => 0x7f80_0000 | (man << 13),
        _ => ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(sign | bits)
}

/// The f32 value of a bfloat16 (its bits are the top half of an f32's).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// De-quantizes `data` (whole blocks of `ty`) into `out`, one value per element.
///
/// The caller checks that `ty` is de-quantizable and that `data` holds exactly
/// `out.len() / block_size` blocks; returns `false` (writing nothing) when it is not.
pub(crate) fn dequantize_into(ty: GgmlType, data: &[u8], out: &mut [f32]) -> bool {
    let (bs, ts) = (ty.block_size(), ty.type_size());
    if !out.len().is_multiple_of(bs) || data.len() != out.len() / bs * ts {
        return false;
    }
    let blocks = data.chunks_exact(ts).zip(out.chunks_exact_mut(bs));
    match ty {
        GgmlType::F32 => blocks.for_each(|(b, y)| {
            y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }),
        GgmlType::F16 => blocks.for_each(|(b, y)| y[0] = f16_at(b, 0)),
        GgmlType::Bf16 => blocks.for_each(|(b, y)| {
            y[0] = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        }),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| q8_0(b, y)),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| q4_1(b, y)),
        GgmlType::Q4K => blocks.for_each(|(b, y)| q4_k(b, y)),
        GgmlType::Q6K => blocks.for_each(|(b, y)| q6_k(b, y)),
        _ => return false,
    }
    true
}

/// `block_q8_0 { half d; int8 qs[32] }`: `d * qs[i]`.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = d * f32::from(q as i8);
    }
}

/// `block_q4_0 { half d; uint8 qs[16] }`: element `j` is the low nibble of `qs[j]`, element
/// `j + 16` the high one; value `d * (nibble - 8)`.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = y.split_at_mut(16);
    for (j, &q) in b[2..18].iter().enumerate() {
        lo[j] = d * f32::from((q & 0x0f) as i8 - 8);
        hi[j] = d * f32::from((q >> 4) as i8 - 8);
    }
}

/// `block_q4_1 { half d; half m; uint8 qs[16] }`: nibbles as in Q4_0, value `d * nibble + m`.
fn q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let (lo, hi) = y.split_at_mut(16);
    for (j, &q) in b[4..20].iter().enumerate() {
        lo[j] = d * f32::from(q & 0x0f) + m;
        hi[j] = d * f32::from(q >> 4) + m;
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) from the 12
/// packed bytes of a Q4_K/Q5_K super-block.
#[inline]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128] }`, 256 elements in 8
/// sub-blocks of 32: each 64 elements share 32 bytes of `qs`, low nibbles first; value
/// `d * scale * nibble - dmin * min`.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for (k, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * k, scales);
        let (sc2, m2) = scale_min_k4(2 * k + 1, scales);
        let (d1, m1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), dmin * f32::from(m2));
        let (lo, hi) = y.split_at_mut(32);
        for ((&q, lo), hi) in q.iter().zip(lo).zip(hi) {
            *lo = d1 * f32::from(q & 0x0f) - m1;
            *hi = d2 * f32::from(q >> 4) - m2;
        }
    }
}

/// `block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d }`, 256 elements in
/// two halves of 128: a 6-bit value is 4 bits of `ql` and 2 of `qh`, minus 32; each 16
/// elements share a scale; value `d * scale * q`.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &b[192 + half * 8..192 + half * 8 + 8];
        let y = &mut y[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            y[l] = d * f32::from(sc[is] as i8) * f32::from(q1);
            y[l + 32] = d * f32::from(sc[is + 2] as i8) * f32::from(q2);
            y[l + 64] = d * f32::from(sc[is + 4] as i8) * f32::from(q3);
            y[l + 96] = d * f32::from(sc[is + 6] as i8) * f32::from(q4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8400), -(2f32.powi(-14)));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    #[test]
    fn wrong_lengths_are_refused() {
        let mut out = vec![0.0; 32];
        assert!(!dequantize_into(GgmlType::Q4_0, &[0; 17], &mut out));
        assert!(!dequantize_into(GgmlType::Q5_0, &[0; 22], &mut out));
        assert!(dequantize_into(GgmlType::Q4_0, &[0; 18], &mut out));
    }
}
