//! The X-ray input gate, from the image's own description: before a chest
//! classifier answers, the DICOM attributes must not say the picture is
//! something else (issue 29).
//!
//! - Modality: CR, DX and DR (and the retired RG) are radiographs; any
//!   other stated Modality (US, CT, MR, XA, MG, ...) is refused as "not an
//!   X-ray image" (XA and MG are X-ray, but angiography and mammography
//!   are not what a chest classifier was made for: "not a chest
//!   radiograph").
//! - Body Part Examined: CHEST (and the thorax spellings) is accepted;
//!   another stated part is refused as "not a chest radiograph".
//! - View Position: PA and AP are accepted; LL, RL and LATERAL as "lateral
//!   view"; others (oblique, ...) as "not a frontal view".
//! - Presentation Intent Type FOR PROCESSING (raw detector data, not yet
//!   windowed or processed for viewing) is refused: the classifier was
//!   trained on pictures for presentation.
//! - Photometric Interpretation is handled before the gate: MONOCHROME1 is
//!   inverted when the frame is decoded.
//!
//! A missing or empty attribute never refuses on its own: PNGs, live
//! video and many exports carry none. The pixels' own check comes after
//! the model ran: [`pixels`] refuses a picture whose out-of-distribution
//! score (a second output of the bundle's graph, manifest `[gate]`) is over
//! the threshold set on held-out images at training time, as "unfamiliar
//! picture". It cannot say what the picture is, only that it is unlike
//! what the model was made for.

use std::fmt;

/// What a DICOM object says about its picture; `None` when not stated.
/// Values are upper case, trimmed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFacts {
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub view_position: Option<String>,
    pub presentation_intent: Option<String>,
}

/// Why the gate refused a picture.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// Modality of another kind of imaging.
    NotXray { modality: String },
    /// An X-ray of something other than the chest, or not a radiograph.
    NotChest { why: String },
    /// A lateral chest view.
    Lateral { view: String },
    /// Neither frontal nor lateral (oblique, ...).
    NotFrontal { view: String },
    /// Raw detector data.
    ForProcessing,
    /// The pixels are unlike the model's training images: its
    /// out-of-distribution score is over the bundle's threshold.
    Unfamiliar { score: f32, threshold: f32 },
}

impl Refusal {
    /// The short reason, as on the screen.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotXray { .. } => "not an X-ray image",
            Refusal::NotChest { .. } => "not a chest radiograph",
            Refusal::Lateral { .. } => "lateral view",
            Refusal::NotFrontal { .. } => "not a frontal view",
            Refusal::ForProcessing => "raw detector image",
            Refusal::Unfamiliar { .. } => "unfamiliar picture",
        }
    }
}

/// The attribute that decided, as "Modality CT".
pub struct Detail<'a>(&'a Refusal);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Refusal::NotXray { modality } => write!(f, "Modality {modality}"),
            Refusal::NotChest { why } => f.write_str(why),
            Refusal::Lateral { view } | Refusal::NotFrontal { view } => {
                write!(f, "View Position {view}")
            }
            Refusal::ForProcessing => f.write_str("Presentation Intent FOR PROCESSING"),
            Refusal::Unfamiliar { score, threshold } => {
                write!(f, "pixel gate score {score:.1} > {threshold:.1}")
            }
        }
    }
}

impl Refusal {
    /// The attribute that decided, for a second line.
    pub fn detail(&self) -> Detail<'_> {
        Detail(self)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.detail())
    }
}

/// Chest spellings of Body Part Examined (DICOM PS3.16 Annex L, and
/// what consoles write).
const CHEST: [&str; 4] = ["CHEST", "THORAX", "LUNG", "CHEST_LAT"];

/// The gate for a chest X-ray classifier.
pub fn chest_xray(facts: &ImageFacts) -> Result<(), Refusal> {
    if let Some(m) = facts.modality.as_deref() {
        match m {
            "CR" | "DX" | "DR" | "RG" => {}
            "XA" | "RF" | "MG" | "IO" | "PX" => {
                return Err(Refusal::NotChest {
                    why: format!("Modality {m}"),
                });
            }
            _ => {
                return Err(Refusal::NotXray {
                    modality: m.to_string(),
                });
            }
        }
    }
    if let Some(b) = facts.body_part.as_deref()
        && !CHEST.contains(&b)
    {
        return Err(Refusal::NotChest {
            why: format!("Body Part Examined {b}"),
        });
    }
    if let Some(v) = facts.view_position.as_deref() {
        match v {
            "PA" | "AP" => {}
            "LL" | "RL" | "LATERAL" | "LAT" | "LLD" | "RLD" => {
                return Err(Refusal::Lateral {
                    view: v.to_string(),
                });
            }
            _ => {
                return Err(Refusal::NotFrontal {
                    view: v.to_string(),
                });
            }
        }
    }
    if facts.presentation_intent.as_deref() == Some("FOR PROCESSING") {
        return Err(Refusal::ForProcessing);
    }
    Ok(())
}

/// The pixel gate: a picture whose out-of-distribution score is over the
/// bundle's threshold gets no answer. A score that is not a number is the
/// model's fault, for the caller to report as such, not a refusal.
pub fn pixels(score: f32, threshold: f32) -> Result<(), Refusal> {
    if score > threshold {
        return Err(Refusal::Unfamiliar { score, threshold });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(m: Option<&str>, b: Option<&str>, v: Option<&str>, p: Option<&str>) -> ImageFacts {
        ImageFacts {
            modality: m.map(String::from),
            body_part: b.map(String::from),
            view_position: v.map(String::from),
            presentation_intent: p.map(String::from),
        }
    }

    #[test]
    fn missing_attributes_never_refuse() {
        assert_eq!(chest_xray(&ImageFacts::default()), Ok(()));
        assert_eq!(chest_xray(&facts(Some("DX"), None, None, None)), Ok(()));
        assert_eq!(
            chest_xray(&facts(
                Some("CR"),
                Some("CHEST"),
                Some("PA"),
                Some("FOR PRESENTATION")
            )),
            Ok(())
        );
    }

    #[test]
    fn each_attribute_refuses_with_its_reason() {
        let cases = [
            (
                facts(Some("CT"), None, None, None),
                "not an X-ray image (Modality CT)",
            ),
            (
                facts(Some("US"), Some("CHEST"), None, None),
                "not an X-ray image (Modality US)",
            ),
            (
                facts(Some("XA"), None, None, None),
                "not a chest radiograph (Modality XA)",
            ),
            (
                facts(Some("CR"), Some("HAND"), None, None),
                "not a chest radiograph (Body Part Examined HAND)",
            ),
            (
                facts(None, None, Some("LL"), None),
                "lateral view (View Position LL)",
            ),
            (
                facts(Some("DX"), None, Some("LAO"), None),
                "not a frontal view (View Position LAO)",
            ),
            (
                facts(Some("DX"), None, None, Some("FOR PROCESSING")),
                "raw detector image (Presentation Intent FOR PROCESSING)",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(chest_xray(&f).unwrap_err().to_string(), want, "{f:?}");
        }
    }

    #[test]
    fn the_pixel_gate_refuses_over_its_threshold_only() {
        assert_eq!(pixels(70.0, 70.5), Ok(()));
        assert_eq!(pixels(70.5, 70.5), Ok(()));
        let r = pixels(150.25, 70.5).unwrap_err();
        assert_eq!(r.reason(), "unfamiliar picture");
        assert_eq!(
            r.to_string(),
            "unfamiliar picture (pixel gate score 150.2 > 70.5)"
        );
    }
}
