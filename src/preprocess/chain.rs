//! The preprocessing chain as written in manifests and on the command line:
//! comma-separated steps, applied in order after conversion to 8-bit gray.
//!
//! | step | meaning |
//! |---|---|
//! | `crop=X:Y:WxH` | keep the rectangle at (X, Y) of W x H pixels |
//! | `crop=auto` | keep the detected active image area (sector or radiograph) |
//! | `resize=WxH` | area averaging when shrinking, bilinear otherwise |
//! | `equalize` | histogram equalization (OpenCV `equalizeHist` mapping) |
//! | `clahe=C:GxG` | CLAHE, clip limit C (0 = none) over a G x G tile grid, e.g. `clahe=2.0:8x8` |
//! | `gamma=G` | `out = 255 * (in / 255)^G` through a table; G < 1 brightens |
//! | `quantize` | to the model's int8 input; must come last |
//!
//! Example: `crop=40:30:560x420,resize=224x224,equalize,quantize`.

use std::fmt;

use super::clahe::ClaheParams;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// What a `crop` step keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropSpec {
    Rect(Rect),
    /// The detected active image area (see [`super::crop`]), found on the
    /// first frame of each frame size and kept while the size stays.
    Auto,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    Crop(CropSpec),
    Resize { width: u32, height: u32 },
    Equalize,
    Clahe(ClaheParams),
    Gamma(f32),
    Quantize,
}

/// A validated list of steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChainError {
    #[error("empty preprocessing chain")]
    Empty,
    #[error(
        "unknown preprocessing step '{0}' (known: crop, resize, equalize, clahe, gamma, quantize)"
    )]
    UnknownStep(String),
    #[error("bad value '{value}' for {step}: expected {expected}")]
    BadValue {
        step: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("'quantize' must be the last step")]
    QuantizeNotLast,
    #[error("step '{0}' appears more than once")]
    Duplicate(&'static str),
}

/// Largest side a resize may produce.
const MAX_RESIZE: u32 = 4096;

fn parse_size(step: &'static str, v: &str) -> Result<(u32, u32), ChainError> {
    let bad = || ChainError::BadValue {
        step,
        value: v.to_string(),
        expected: "WxH with sides 1..=4096",
    };
    let (w, h) = v.split_once('x').ok_or_else(bad)?;
    let w: u32 = w.parse().map_err(|_| bad())?;
    let h: u32 = h.parse().map_err(|_| bad())?;
    if !(1..=MAX_RESIZE).contains(&w) || !(1..=MAX_RESIZE).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
}

impl FromStr for Chain {
    type Err = ChainError;
    fn from_str(s: &str) -> Result<Chain, ChainError> {
        let mut steps = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (name, value) = raw
                .split_once('=')
                .map_or((raw, None), |(n, v)| (n, Some(v)));
            let need = |step: &'static str, expected: &'static str| {
                value.ok_or(ChainError::BadValue {
                    step,
                    value: String::new(),
                    expected,
                })
            };
            let step = match name {
                "crop" if value == Some("auto") => Step::Crop(CropSpec::Auto),
                "crop" => {
                    let v = need("crop", "X:Y:WxH or auto")?;
                    let bad = || ChainError::BadValue {
                        step: "crop",
                        value: v.to_string(),
                        expected: "X:Y:WxH",
                    };
                    let mut it = v.splitn(3, ':');
                    let x = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                    let y = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                    let (width, height) = parse_size("crop", it.next().ok_or_else(bad)?)?;
                    Step::Crop(CropSpec::Rect(Rect {
                        x,
                        y,
                        width,
                        height,
                    }))
                }
                "resize" => {
                    let (width, height) = parse_size("resize", need("resize", "WxH")?)?;
                    Step::Resize { width, height }
                }
                "clahe" => {
                    let v = need("clahe", "CLIP:GXxGY, e.g. 2.0:8x8")?;
                    let bad = || ChainError::BadValue {
                        step: "clahe",
                        value: v.to_string(),
                        expected: "CLIP:GXxGY with CLIP in 0..=64 and 1..=64 tiles, e.g. 2.0:8x8",
                    };
                    let (c, g) = v.split_once(':').ok_or_else(bad)?;
                    let clip: f32 = c.parse().map_err(|_| bad())?;
                    let (gx, gy) = g.split_once('x').ok_or_else(bad)?;
                    let (gx, gy): (u32, u32) = (
                        gx.parse().map_err(|_| bad())?,
                        gy.parse().map_err(|_| bad())?,
                    );
                    if !(0.0..=64.0).contains(&clip)
                        || !(1..=64).contains(&gx)
                        || !(1..=64).contains(&gy)
                    {
                        return Err(bad());
                    }
                    Step::Clahe(ClaheParams {
                        clip_limit: clip,
                        tiles_x: gx,
                        tiles_y: gy,
                    })
                }
                "gamma" => {
                    let v = need("gamma", "a number in 0.1..=10")?;
                    match v.parse::<f32>() {
                        Ok(g) if (0.1..=10.0).contains(&g) => Step::Gamma(g),
                        _ => {
                            return Err(ChainError::BadValue {
                                step: "gamma",
                                value: v.into(),
                                expected: "a number in 0.1..=10",
                            });
                        }
                    }
                }
                "equalize" | "quantize" if value.is_some() => {
                    return Err(ChainError::BadValue {
                        step: if name == "equalize" {
                            "equalize"
                        } else {
                            "quantize"
                        },
                        value: value.unwrap_or_default().into(),
                        expected: "no value",
                    });
                }
                "equalize" => Step::Equalize,
                "quantize" => Step::Quantize,
                other => return Err(ChainError::UnknownStep(other.to_string())),
            };
            steps.push(step);
        }
        if steps.is_empty() {
            return Err(ChainError::Empty);
        }
        if steps
            .iter()
            .position(|s| *s == Step::Quantize)
            .is_some_and(|i| i != steps.len() - 1)
        {
            return Err(ChainError::QuantizeNotLast);
        }
        for (name, count) in [
            (
                "crop",
                steps.iter().filter(|s| matches!(s, Step::Crop(_))).count(),
            ),
            (
                "resize",
                steps
                    .iter()
                    .filter(|s| matches!(s, Step::Resize { .. }))
                    .count(),
            ),
        ] {
            if count > 1 {
                return Err(ChainError::Duplicate(name));
            }
        }
        Ok(Chain { steps })
    }
}

impl Chain {
    /// Whether the chain ends in the model's int8 input.
    pub fn quantizes(&self) -> bool {
        self.steps.last() == Some(&Step::Quantize)
    }

    /// Output size for a given input size (an automatic crop counts as the
    /// whole frame: only a later resize fixes the size).
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        self.steps.iter().fold((width, height), |size, s| match s {
            Step::Crop(CropSpec::Rect(r)) => (r.width, r.height),
            Step::Resize { width, height } => (*width, *height),
            _ => size,
        })
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Crop(CropSpec::Rect(r)) => {
                    format!("crop={}:{}:{}x{}", r.x, r.y, r.width, r.height)
                }
                Step::Crop(CropSpec::Auto) => "crop=auto".into(),
                Step::Resize { width, height } => format!("resize={width}x{height}"),
                Step::Equalize => "equalize".into(),
                Step::Clahe(p) => format!("clahe={}:{}x{}", p.clip_limit, p.tiles_x, p.tiles_y),
                Step::Gamma(g) => format!("gamma={g}"),
                Step::Quantize => "quantize".into(),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        let c: Chain = "crop=1:2:30x40, resize=32x32,equalize,clahe=2.5:8x4,gamma=0.8,quantize"
            .parse()
            .unwrap();
        assert_eq!(c.steps.len(), 6);
        assert!(c.quantizes());
        assert_eq!(c.output_size(640, 480), (32, 32));
        assert_eq!(c.to_string().parse::<Chain>().unwrap(), c);
        let auto: Chain = "crop=auto,resize=8x8".parse().unwrap();
        assert_eq!(auto.steps[0], Step::Crop(CropSpec::Auto));
        assert_eq!(auto.to_string(), "crop=auto,resize=8x8");
        assert_eq!(auto.output_size(640, 480), (8, 8));
    }

    #[test]
    fn rejects_bad_specs() {
        assert_eq!("".parse::<Chain>(), Err(ChainError::Empty));
        assert_eq!(
            "blur".parse::<Chain>(),
            Err(ChainError::UnknownStep("blur".into()))
        );
        assert_eq!(
            "quantize,equalize".parse::<Chain>(),
            Err(ChainError::QuantizeNotLast)
        );
        assert_eq!(
            "resize=8x8,resize=4x4".parse::<Chain>(),
            Err(ChainError::Duplicate("resize"))
        );
        for bad in [
            "clahe=2",
            "clahe=-1:8x8",
            "clahe=2:0x8",
            "clahe=2:8",
            "resize=0x5",
            "resize=10",
            "resize=axb",
            "gamma=0",
            "gamma",
            "crop=1:2",
            "equalize=3",
            "resize=5000x1",
        ] {
            assert!(
                matches!(bad.parse::<Chain>(), Err(ChainError::BadValue { .. })),
                "{bad}"
            );
        }
    }
}
