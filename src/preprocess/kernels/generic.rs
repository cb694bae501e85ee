//! Scalar reference kernels: the specification the SIMD versions must match bit
//! for bit. Integer arithmetic only.

/// BT.601 luma weights in Q14, as OpenCV's `cvtColor(RGB2GRAY)` uses them
/// (0.299, 0.587, 0.114 scaled by 2^14 and rounded so they sum to 2^14).
pub const GRAY_R_Q14: u32 = 4899;
pub const GRAY_G_Q14: u32 = 9617;
pub const GRAY_B_Q14: u32 = 1868;

/// Packed R, G, B to gray: `(R*4899 + G*9617 + B*1868 + 2^13) >> 14`.
/// `src` holds `3 * dst.len()` bytes.
pub fn rgb24_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
        let y = u32::from(p[0]) * GRAY_R_Q14
            + u32::from(p[1]) * GRAY_G_Q14
            + u32::from(p[2]) * GRAY_B_Q14;
        *d = ((y + (1 << 13)) >> 14) as u8;
    }
}

/// Packed B, G, R to gray with the same weights. `src` holds `3 * dst.len()` bytes.
pub fn bgr24_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
        let y = u32::from(p[2]) * GRAY_R_Q14
            + u32::from(p[1]) * GRAY_G_Q14
            + u32::from(p[0]) * GRAY_B_Q14;
        *d = ((y + (1 << 13)) >> 14) as u8;
    }
}

/// XRGB8888 (bytes B, G, R, X) to gray. `src` holds `4 * dst.len()` bytes.
pub fn xrgb8888_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(4)) {
        let y = u32::from(p[2]) * GRAY_R_Q14
            + u32::from(p[1]) * GRAY_G_Q14
            + u32::from(p[0]) * GRAY_B_Q14;
        *d = ((y + (1 << 13)) >> 14) as u8;
    }
}

/// UYVY (U Y0 V Y1) to gray: the luma bytes. `src` holds `2 * dst.len()` bytes.
pub fn uyvy_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = p[1];
    }
}

/// YUYV (Y0 U Y1 V) to gray: the luma bytes. `src` holds `2 * dst.len()` bytes.
pub fn yuyv_to_gray(src: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = p[0];
    }
}

/// Little-endian 16-bit samples through a 65536-entry table.
pub fn lut_u16(src: &[u8], lut: &[u8], dst: &mut [u8]) {
    for (d, p) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = lut[usize::from(u16::from_le_bytes([p[0], p[1]]))];
    }
}

/// 8-bit samples through a 256-entry table.
pub fn lut_u8(src: &[u8], lut: &[u8; 256], dst: &mut [u8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = lut[usize::from(s)];
    }
}

/// Histogram of 8-bit samples.
pub fn histogram_u8(src: &[u8]) -> [u32; 256] {
    let mut h = [0u32; 256];
    for &s in src {
        h[usize::from(s)] += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_weights_follow_bt601_and_channel_order() {
        let (mut rgb, mut bgr, mut xrgb) = ([0u8; 2], [0u8; 2], [0u8; 2]);
        rgb24_to_gray(&[255, 0, 0, 255, 255, 255], &mut rgb);
        bgr24_to_gray(&[0, 0, 255, 255, 255, 255], &mut bgr);
        xrgb8888_to_gray(&[0, 0, 255, 0, 255, 255, 255, 0], &mut xrgb);
        // Pure red: 255 * 0.299 = 76.2 -> 76; white stays 255.
        assert_eq!((rgb, bgr, xrgb), ([76, 255], [76, 255], [76, 255]));
        let mut y = [0u8; 2];
        uyvy_to_gray(&[1, 10, 2, 20], &mut y);
        assert_eq!(y, [10, 20]);
        yuyv_to_gray(&[10, 1, 20, 2], &mut y);
        assert_eq!(y, [10, 20]);
    }
}
