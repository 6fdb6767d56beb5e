//! Compensated (Neumaier) summation, so group totals do not depend on the
//! order rows arrive in or on the order partial estimators are merged.

/// A running sum with a compensation term for lost low-order bits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct NeumaierSum {
    sum: f64,
    compensation: f64,
}

impl NeumaierSum {
    /// Adds one value.
    #[inline]
    pub(crate) fn add(&mut self, value: f64) {
        let t = self.sum + value;
        if self.sum.abs() >= value.abs() {
            self.compensation += (self.sum - t) + value;
        } else {
            self.compensation += (value - t) + self.sum;
        }
        self.sum = t;
    }

    /// Adds another partial sum.
    pub(crate) fn merge(&mut self, other: NeumaierSum) {
        self.add(other.sum);
        self.add(other.compensation);
    }

    /// The compensated total.
    pub(crate) fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_small_terms_lost_by_naive_summation() {
        let mut s = NeumaierSum::default();
        for v in [1.0, 1e100, 1.0, -1e100] {
            s.add(v);
        }
        // Naive left-to-right summation gives 0; the exact sum is 2.
        assert_eq!(s.value(), 2.0);
    }

    #[test]
    fn merge_equals_sequential_sum() {
        let (mut a, mut b, mut all) = (NeumaierSum::default(), NeumaierSum::default(), NeumaierSum::default());
        for (i, v) in [0.1, 0.2, 0.3, 1e16, -1e16, 0.7].into_iter().enumerate() {
            if i % 2 == 0 { a.add(v) } else { b.add(v) }
            all.add(v);
        }
        a.merge(b);
        assert_eq!(a.value(), all.value());
        assert!((all.value() - 1.3).abs() < 1e-15);
    }
}
