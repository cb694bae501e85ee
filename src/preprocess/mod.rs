//! Preprocessing: whatever the source sends becomes a display copy (8-bit gray
//! at full size) and the model's int8 input, with integer arithmetic per pixel.
//!
//! The steps run in the order of a [`Chain`] (see [`chain`] for the syntax).
//! All buffers live in the [`Preprocessor`] and are reused frame after frame.

pub mod chain;
pub mod clahe;
pub mod convert;
pub mod crop;
pub mod kernels;
pub mod resize;

pub use chain::{Chain, ChainError, CropSpec, Rect, Step};

use crate::frame::Frame;
use kernels::Kernels;
use resize::ResizePlan;

/// A packed 8-bit gray image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrayImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl GrayImage {
    /// Copies `other` into this buffer, reusing its capacity.
    pub fn copy_from(&mut self, other: &GrayImage) {
        self.reset(other.width, other.height);
        self.data.copy_from_slice(&other.data);
    }

    /// Resizes the buffer for a `width` x `height` image (keeps capacity).
    pub fn reset(&mut self, width: u32, height: u32) {
        self.width = width;
        self.height = height;
        self.data.resize(width as usize * height as usize, 0);
    }
}

/// The model's input quantization, from its manifest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputQuant {
    /// int8 step size of the model's input tensor.
    pub scale: f32,
    /// int8 value of float zero.
    pub zero_point: i32,
    /// Model float per pixel unit: float = pixel * pixel_scale.
    pub pixel_scale: f32,
}

impl InputQuant {
    /// The 256-entry table from pixel value to int8 input, built once (float
    /// here, so that no per-pixel float remains).
    pub fn table(&self) -> [i8; 256] {
        let mut t = [0i8; 256];
        for (p, q) in t.iter_mut().enumerate() {
            let v = (p as f32 * self.pixel_scale / self.scale).round() as i32 + self.zero_point;
            *q = v.clamp(-128, 127) as i8;
        }
        t
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PreprocessError {
    #[error("crop {}:{}:{}x{} lies outside the {width}x{height} frame", rect.x, rect.y, rect.width, rect.height)]
    CropOutside { rect: Rect, width: u32, height: u32 },
    #[error("the chain ends in 'quantize' but no model input quantization was given")]
    NoQuantization,
}

/// Converts frames to the 8-bit gray picture the screen shows, with the
/// same kernels as [`Preprocessor`] (so the picture equals its
/// [`display`](Preprocessor::display) copy). The display thread uses it to
/// show every frame while the model works on an earlier one.
#[derive(Default)]
pub struct ToGray {
    converter: convert::Converter,
    image: GrayImage,
}

impl ToGray {
    /// Converts `frame`, reusing the buffer.
    pub fn run(&mut self, frame: &Frame) -> &GrayImage {
        self.converter
            .run(kernels::kernels(), frame, &mut self.image);
        &self.image
    }

    /// The last frame converted.
    pub fn image(&self) -> &GrayImage {
        &self.image
    }
}

/// Runs a chain on frames, reusing every buffer.
pub struct Preprocessor {
    chain: Chain,
    kernels: &'static Kernels,
    quant_table: Option<[i8; 256]>,
    gamma_luts: Vec<[u8; 256]>,
    converter: convert::Converter,
    clahe: clahe::Clahe,
    display: GrayImage,
    work: GrayImage,
    scratch: GrayImage,
    resize: Option<ResizePlan>,
    /// Detected active area per frame size, for `crop=auto`.
    auto_crop: Option<((u32, u32), Rect)>,
    /// The area of the display copy the last frame's chain cropped.
    area: Rect,
    input: Vec<i8>,
}

impl Preprocessor {
    /// `quant` is required when the chain ends in `quantize`.
    pub fn new(chain: Chain, quant: Option<InputQuant>) -> Result<Preprocessor, PreprocessError> {
        if chain.quantizes() && quant.is_none() {
            return Err(PreprocessError::NoQuantization);
        }
        let gamma_luts = chain
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Gamma(g) => Some(gamma_table(*g)),
                _ => None,
            })
            .collect();
        Ok(Preprocessor {
            quant_table: quant.filter(|_| chain.quantizes()).map(|q| q.table()),
            chain,
            kernels: kernels::kernels(),
            gamma_luts,
            converter: convert::Converter::default(),
            clahe: clahe::Clahe::default(),
            display: GrayImage::default(),
            work: GrayImage::default(),
            scratch: GrayImage::default(),
            resize: None,
            auto_crop: None,
            area: Rect::default(),
            input: Vec::new(),
        })
    }

    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Which kernel table is in use ("neon", "avx2" or "generic").
    pub fn kernel_name(&self) -> &'static str {
        self.kernels.name
    }

    /// Processes one frame. Afterwards [`display`](Self::display),
    /// [`processed`](Self::processed) and [`model_input`](Self::model_input) hold it.
    pub fn process(&mut self, frame: &Frame) -> Result<(), PreprocessError> {
        let k = self.kernels;
        self.converter.run(k, frame, &mut self.display);
        // The chain starts on the display copy itself; it is copied into the
        // work buffer only when a step would change it in place (a full-size
        // copy of a radiograph costs as much as the step after it).
        let mut on_display = true;
        // Whether a crop or resize has already changed the geometry.
        let mut reshaped = false;
        self.area = Rect {
            x: 0,
            y: 0,
            width: self.display.width,
            height: self.display.height,
        };
        let mut gamma = self.gamma_luts.iter();
        for step in &self.chain.steps {
            if on_display && matches!(step, Step::Equalize | Step::Clahe(_) | Step::Gamma(_)) {
                self.work.copy_from(&self.display);
                on_display = false;
            }
            let current = if on_display {
                &self.display
            } else {
                &self.work
            };
            match *step {
                Step::Crop(spec) => {
                    let (w, h) = (current.width, current.height);
                    let r = match spec {
                        CropSpec::Rect(r) => r,
                        CropSpec::Auto => match self.auto_crop {
                            Some((size, r)) if size == (w, h) => r,
                            _ => {
                                let r = crop::detect_active_area(current);
                                tracing::info!(
                                    "active image area {}x{} at ({}, {}) in {w}x{h} frames",
                                    r.width,
                                    r.height,
                                    r.x,
                                    r.y
                                );
                                self.auto_crop = Some(((w, h), r));
                                r
                            }
                        },
                    };
                    if r.x.checked_add(r.width).is_none_or(|e| e > w)
                        || r.y.checked_add(r.height).is_none_or(|e| e > h)
                    {
                        return Err(PreprocessError::CropOutside {
                            rect: r,
                            width: w,
                            height: h,
                        });
                    }
                    if !reshaped {
                        self.area = r;
                    }
                    reshaped = true;
                    self.scratch.reset(r.width, r.height);
                    for (y, dst) in self
                        .scratch
                        .data
                        .chunks_exact_mut(r.width as usize)
                        .enumerate()
                    {
                        let start = (r.y as usize + y) * w as usize + r.x as usize;
                        dst.copy_from_slice(&current.data[start..start + r.width as usize]);
                    }
                    std::mem::swap(&mut self.work, &mut self.scratch);
                    on_display = false;
                }
                Step::Resize { width, height } => {
                    reshaped = true;
                    let src = (current.width, current.height);
                    if self.resize.as_ref().is_none_or(|p| p.src_size() != src) {
                        self.resize = Some(ResizePlan::new(src, (width, height)));
                    }
                    self.scratch.reset(width, height);
                    if let Some(plan) = self.resize.as_mut() {
                        plan.run(k, &current.data, &mut self.scratch.data);
                    }
                    std::mem::swap(&mut self.work, &mut self.scratch);
                    on_display = false;
                }
                Step::Equalize => {
                    let mut hist = [0u32; 256];
                    (k.histogram_add)(&self.work.data, &mut hist);
                    let lut = equalize_table(&hist, self.work.data.len() as u32);
                    (k.lut_in_place)(&mut self.work.data, &lut);
                }
                Step::Clahe(p) => self.clahe.apply(k, p, &mut self.work),
                Step::Gamma(_) => {
                    if let Some(lut) = gamma.next() {
                        (k.lut_in_place)(&mut self.work.data, lut);
                    }
                }
                Step::Quantize => {
                    if let Some(t) = &self.quant_table {
                        self.input.resize(current.data.len(), 0);
                        (k.lut_to_i8)(&current.data, t, &mut self.input);
                    }
                }
            }
        }
        if on_display {
            self.work.copy_from(&self.display);
        }
        Ok(())
    }

    /// The part of [`display`](Self::display) the chain cropped for the
    /// model (all of it without a crop step; a crop after a resize is not
    /// an area of the display and leaves it whole).
    pub fn active_area(&self) -> Rect {
        self.area
    }

    /// The frame as 8-bit gray at full size (what the screen shows).
    pub fn display(&self) -> &GrayImage {
        &self.display
    }

    /// The chain's result before quantization.
    pub fn processed(&self) -> &GrayImage {
        &self.work
    }

    /// The model's int8 input (empty unless the chain quantizes).
    pub fn model_input(&self) -> &[i8] {
        &self.input
    }
}

/// OpenCV's `equalizeHist` mapping in integers: the first occupied level maps
/// to 0 and level i to round(255 * (cdf(i) - h(first)) / (total - h(first))).
pub fn equalize_table(hist: &[u32; 256], total: u32) -> [u8; 256] {
    let mut lut = [0u8; 256];
    let Some(first) = hist.iter().position(|&h| h > 0) else {
        return lut;
    };
    let base = u64::from(hist[first]);
    if base == u64::from(total) {
        lut.iter_mut().for_each(|v| *v = first as u8);
        return lut;
    }
    let denom = u64::from(total) - base;
    let mut cdf = 0u64;
    for i in first + 1..256 {
        cdf += u64::from(hist[i]);
        lut[i] = ((cdf * 255 + denom / 2) / denom).min(255) as u8;
    }
    lut
}

fn gamma_table(g: f32) -> [u8; 256] {
    let mut t = [0u8; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = (255.0 * (i as f64 / 255.0).powf(f64::from(g)))
            .round()
            .clamp(0.0, 255.0) as u8;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameMeta, PixelFormat};

    #[test]
    fn equalize_spreads_two_levels() {
        let mut h = [0u32; 256];
        h[10] = 50;
        h[20] = 50;
        let lut = equalize_table(&h, 100);
        assert_eq!((lut[10], lut[20]), (0, 255));
    }

    #[test]
    fn quant_table_matches_formula() {
        let q = InputQuant {
            scale: 1.0 / 255.0,
            zero_point: -128,
            pixel_scale: 1.0 / 255.0,
        };
        let t = q.table();
        assert_eq!((t[0], t[128], t[255]), (-128, 0, 127));
    }

    #[test]
    fn chain_runs_end_to_end() {
        let chain: Chain = "crop=0:0:4x4,resize=2x2,equalize,gamma=1,quantize"
            .parse()
            .unwrap();
        let q = InputQuant {
            scale: 1.0 / 255.0,
            zero_point: -128,
            pixel_scale: 1.0 / 255.0,
        };
        let mut p = Preprocessor::new(chain, Some(q)).unwrap();
        let data: Vec<u8> = (0..48u8).collect();
        let f = Frame::packed(data, PixelFormat::Rgb24, 4, 4, FrameMeta::default()).unwrap();
        p.process(&f).unwrap();
        assert_eq!(p.display().data.len(), 16);
        assert_eq!(p.model_input().len(), 4);
        assert_eq!(p.model_input()[0], -128, "darkest equalizes to 0");
        assert_eq!(p.model_input()[3], 127, "brightest to 255");
    }

    #[test]
    fn crop_outside_is_an_error() {
        let mut p = Preprocessor::new("crop=2:2:4x4".parse().unwrap(), None).unwrap();
        let f = Frame::packed(vec![0; 16], PixelFormat::Gray8, 4, 4, FrameMeta::default()).unwrap();
        assert!(matches!(
            p.process(&f),
            Err(PreprocessError::CropOutside { .. })
        ));
        assert_eq!(
            Preprocessor::new("quantize".parse().unwrap(), None).err(),
            Some(PreprocessError::NoQuantization)
        );
    }
}
