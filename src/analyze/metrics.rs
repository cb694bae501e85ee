//! How well an anomaly detector does against known truth (an
//! [`InjectionPlan`](super::inject::InjectionPlan)): how well its score
//! separates anomalous from clean frames, how soon its alarm sounds, and how
//! often it sounds for nothing.
//!
//! Plain functions over slices, so they serve any detector and any replay.

use super::inject::Segment;

/// Area under the ROC curve of scores: the chance that a random positive
/// scores above a random negative, ties counting half (Mann-Whitney U
/// divided by `n_pos * n_neg`). `None` when either side is empty or any
/// score is NaN. O(n log n): negatives are sorted once, each positive is
/// placed by binary search, and the count is kept exact in integers.
pub fn auroc(positives: &[f32], negatives: &[f32]) -> Option<f64> {
    if positives.is_empty()
        || negatives.is_empty()
        || positives.iter().chain(negatives).any(|s| s.is_nan())
    {
        return None;
    }
    let mut neg = negatives.to_vec();
    neg.sort_unstable_by(f32::total_cmp);
    // Twice U: 2 per negative below, 1 per tie.
    let twice_u: u128 = positives
        .iter()
        .map(|&p| {
            let below = neg.partition_point(|&n| n < p);
            let up_to = neg.partition_point(|&n| n <= p);
            (below + up_to) as u128
        })
        .sum();
    let pairs = positives.len() as u128 * negatives.len() as u128;
    Some(twice_u as f64 / (2 * pairs) as f64)
}

/// Per segment, frames from its start to the first alarmed frame within
/// `[start, start + len + grace)` (the grace lets a detector that needs a
/// few frames still count when the anomaly is short); `None` if the alarm
/// never sounds there. An alarm already up at the start gives 0. Frames
/// past the end of `alarm` count as silent.
pub fn detection_delays(alarm: &[bool], segments: &[Segment], grace: u64) -> Vec<Option<u64>> {
    segments
        .iter()
        .map(|s| {
            let clip = |f: u64| usize::try_from(f).unwrap_or(usize::MAX).min(alarm.len());
            let (from, to) = (clip(s.start), clip(s.end().saturating_add(grace)));
            let first = alarm[from..to].iter().position(|&a| a)?;
            Some(first as u64)
        })
        .collect()
}

/// How many times the alarm goes up (rising edges; one already up at frame
/// 0 counts). A long alarm counts once.
pub fn alarm_onsets(alarm: &[bool]) -> u64 {
    let first = u64::from(alarm.first() == Some(&true));
    first + alarm.windows(2).filter(|w| !w[0] && w[1]).count() as u64
}

/// Alarm onsets per hour of replay, for `frames` frames `frame_interval_us`
/// apart. NaN for a replay of no duration: there is no rate to report.
pub fn false_alarms_per_hour(onsets: u64, frames: u64, frame_interval_us: u64) -> f64 {
    const US_PER_HOUR: f64 = 3_600_000_000.0;
    let hours = frames as f64 * frame_interval_us as f64 / US_PER_HOUR;
    if hours > 0.0 {
        onsets as f64 / hours
    } else {
        f64::NAN
    }
}

/// The lower median (of an even count, the smaller middle value); `None`
/// for no values. Reorders `v` (selection, O(n)).
pub fn median(v: &mut [u64]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mid = (v.len() - 1) / 2;
    Some(*v.select_nth_unstable(mid).1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::inject::AnomalyKind;
    use proptest::prelude::*;

    /// The definition, over all pairs: the reference the fast one must match.
    fn auroc_pairs(pos: &[f32], neg: &[f32]) -> f64 {
        let mut twice = 0u64;
        for &p in pos {
            for &n in neg {
                twice += match p.partial_cmp(&n).unwrap() {
                    std::cmp::Ordering::Greater => 2,
                    std::cmp::Ordering::Equal => 1,
                    std::cmp::Ordering::Less => 0,
                };
            }
        }
        twice as f64 / (2 * pos.len() * neg.len()) as f64
    }

    #[test]
    fn auroc_hand_checked() {
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
        assert_eq!(auroc(&[5.0; 3], &[5.0; 4]), Some(0.5));
        // 0.8 and 0.6 beat all 4 negatives; 0.4 beats 0.2 and 0.1, ties 0.4:
        // U = 4 + 4 + 2.5 = 10.5 of 12 pairs.
        assert_eq!(
            auroc(&[0.8, 0.6, 0.4], &[0.5, 0.4, 0.2, 0.1]),
            Some(10.5 / 12.0)
        );
        // Signed zeros are equal scores; infinities are ordinary scores.
        assert_eq!(auroc(&[0.0], &[-0.0]), Some(0.5));
        assert_eq!(auroc(&[f32::INFINITY], &[f32::MAX]), Some(1.0));
    }

    #[test]
    fn auroc_refuses_empty_sides_and_nan() {
        assert_eq!(auroc(&[], &[1.0]), None);
        assert_eq!(auroc(&[1.0], &[]), None);
        assert_eq!(auroc(&[1.0, f32::NAN], &[0.0]), None);
        assert_eq!(auroc(&[1.0], &[f32::NAN]), None);
    }

    proptest! {
        #[test]
        fn auroc_matches_the_pairwise_definition(
            // Few distinct values, so ties are common.
            pos in prop::collection::vec(0u8..12, 1..40),
            neg in prop::collection::vec(0u8..12, 1..40),
        ) {
            let pos: Vec<f32> = pos.into_iter().map(|v| f32::from(v) * 0.25).collect();
            let neg: Vec<f32> = neg.into_iter().map(|v| f32::from(v) * 0.25).collect();
            prop_assert_eq!(auroc(&pos, &neg), Some(auroc_pairs(&pos, &neg)));
        }
    }

    fn seg(start: u64, len: u64) -> Segment {
        Segment {
            kind: AnomalyKind::Blank,
            start,
            len,
        }
    }

    /// `n` frames, alarmed in the half-open spans `on`.
    fn alarms(on: &[(usize, usize)], n: usize) -> Vec<bool> {
        (0..n)
            .map(|i| on.iter().any(|&(a, b)| (a..b).contains(&i)))
            .collect()
    }

    #[test]
    fn delays_count_from_the_segment_start_and_report_misses() {
        let alarm = alarms(&[(3, 6), (22, 30), (41, 42)], 50);
        let segments = [seg(1, 4), seg(10, 5), seg(20, 3), seg(38, 2), seg(45, 10)];
        assert_eq!(
            detection_delays(&alarm, &segments, 2),
            // 3-1; never in 10..17; up at 22 (20 + 2); 41 is in the grace
            // (38 + 2 + 2 = 42); 45.. is silent and runs past the end.
            vec![Some(2), None, Some(2), Some(3), None]
        );
        // Without grace the alarm at 41 comes too late for 38..40.
        assert_eq!(detection_delays(&alarm, &[seg(38, 2)], 0), vec![None]);
        // Already up at the start: 0.
        assert_eq!(detection_delays(&alarm, &[seg(23, 1)], 0), vec![Some(0)]);
        assert_eq!(
            detection_delays(&[], &[seg(u64::MAX - 1, 5)], u64::MAX),
            vec![None]
        );
    }

    #[test]
    fn onsets_count_rising_edges() {
        assert_eq!(alarm_onsets(&[]), 0);
        assert_eq!(alarm_onsets(&alarms(&[], 10)), 0);
        assert_eq!(
            alarm_onsets(&alarms(&[(2, 900)], 1000)),
            1,
            "a long alarm once"
        );
        assert_eq!(alarm_onsets(&alarms(&[(0, 2), (5, 6), (8, 10)], 10)), 3);
    }

    #[test]
    fn false_alarm_rate_per_hour() {
        // 30 fps for one hour: 108 000 frames 33 333 us apart (~1 h).
        let r = false_alarms_per_hour(3, 108_000, 33_333);
        assert!((r - 3.0).abs() < 1e-3, "{r}");
        // 10 minutes with 2 alarms: 12 per hour.
        let r = false_alarms_per_hour(2, 600, 1_000_000);
        assert!((r - 12.0).abs() < 1e-9, "{r}");
        assert_eq!(false_alarms_per_hour(0, 600, 1_000_000), 0.0);
        assert!(false_alarms_per_hour(1, 0, 33_333).is_nan());
        assert!(false_alarms_per_hour(1, 10, 0).is_nan());
    }

    #[test]
    fn median_is_the_lower_middle() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [7]), Some(7));
        assert_eq!(median(&mut [9, 1, 5]), Some(5));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(2), "lower of 2 and 3");
        assert_eq!(median(&mut [5, 5, 5, 1]), Some(5));
    }
}
