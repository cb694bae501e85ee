//! Classification: logits to probabilities.

/// The most classes a classifier may have: probabilities live in a fixed
/// array, so a result is made without allocating (bundles with more
/// labels are refused at load).
pub const MAX_CLASSES: usize = 32;

/// Probabilities per label and the top class.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    pub probabilities: heapless::Vec<f32, MAX_CLASSES>,
    pub top: usize,
    /// Top probability reached the model's `min_confidence`.
    pub confident: bool,
}

impl Classification {
    /// A classification from given probabilities (tests, goldens).
    pub fn from_probabilities(p: &[f32], top: usize, confident: bool) -> Classification {
        Classification {
            probabilities: p.iter().copied().take(MAX_CLASSES).collect(),
            top,
            confident,
        }
    }
}

/// The X-ray mode's analyzer: softmax of the logits over the bundle's
/// calibration temperature and the top class, confident when its
/// (calibrated) probability reaches `min_confidence`.
pub struct Classifier {
    pub temperature: f32,
    pub min_confidence: f32,
}

impl super::Analyzer for Classifier {
    fn analyze(&mut self, e: &super::Evidence<'_>) -> Option<super::Verdict> {
        classify(e.output, self.temperature, self.min_confidence)
            .map(super::Verdict::Classification)
    }
}

/// Numerically stable softmax of `logits / temperature` (the bundle's
/// calibration; 1 without); `None` for empty, non-finite or too many
/// logits, or a temperature that is not positive (a model fault must never
/// become a made-up class).
pub fn classify(logits: &[f32], temperature: f32, min_confidence: f32) -> Option<Classification> {
    if logits.is_empty()
        || logits.len() > MAX_CLASSES
        || logits.iter().any(|v| !v.is_finite())
        || !(temperature.is_finite() && temperature > 0.0)
    {
        return None;
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probabilities: heapless::Vec<f32, MAX_CLASSES> = logits
        .iter()
        .map(|&v| ((v - max) / temperature).exp())
        .collect();
    let sum: f32 = probabilities.iter().sum();
    for p in probabilities.iter_mut() {
        *p /= sum;
    }
    let top = probabilities
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)?;
    Some(Classification {
        confident: probabilities[top] >= min_confidence,
        top,
        probabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_picks_max() {
        let c = classify(&[1.0, 3.0, 0.5, -2.0], 1.0, 0.5).unwrap();
        assert_eq!(c.top, 1);
        assert!((c.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(c.confident);
        assert!(!classify(&[0.0, 0.0, 0.0, 0.0], 1.0, 0.5).unwrap().confident);
        assert!(classify(&[f32::NAN, 1.0], 1.0, 0.5).is_none());
        assert!(classify(&[], 1.0, 0.5).is_none());
        assert!(classify(&[0.0; MAX_CLASSES + 1], 1.0, 0.5).is_none());
    }

    #[test]
    fn temperature_softens_without_changing_the_top_class() {
        let logits = [1.0, 3.0, 0.5, -2.0];
        let sharp = classify(&logits, 1.0, 0.8).unwrap();
        let soft = classify(&logits, 2.0, 0.8).unwrap();
        assert_eq!(sharp.top, soft.top);
        assert!(soft.probabilities[1] < sharp.probabilities[1]);
        // softmax([1, 3, 0.5, -2] / 2): e^1.5 / (e^0.5 + e^1.5 + e^0.25 + e^-1).
        let want = 1.5f32.exp() / (0.5f32.exp() + 1.5f32.exp() + 0.25f32.exp() + (-1f32).exp());
        assert!((soft.probabilities[1] - want).abs() < 1e-6);
        // Confidence is judged on the calibrated probability.
        assert!(sharp.confident && !soft.confident);
        for t in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(classify(&logits, t, 0.5).is_none(), "{t}");
        }
    }
}
