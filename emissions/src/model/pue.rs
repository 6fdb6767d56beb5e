//! Power usage effectiveness (facility energy ÷ IT energy) of AWS data centres.

use super::quality::Provenance;

/// Cloud Carbon Footprint's flat AWS PUE, kept as a documented alternative.
pub const CCF_PUE: f64 = 1.135;

/// AWS's published fleet-wide PUE by reporting year. AWS disclosed its first
/// global PUE (for 2023) in December 2024; 2024 is on AWS's sustainability
/// pages and 2025 on Amazon's sustainability site.
const AWS_FLEET_PUE: [(i32, f64, Provenance); 3] = [
    (2023, 1.15, Provenance { source: "AWS global PUE (re:Invent 2024 disclosure)", vintage: "2023" }),
    (2024, 1.15, Provenance { source: "AWS global PUE (aws.amazon.com/sustainability)", vintage: "2024" }),
    (2025, 1.14, Provenance { source: "AWS global PUE (sustainability.aboutamazon.com)", vintage: "2025" }),
];

/// AWS fleet PUE for `year`: the published figure of that year; years before
/// the first disclosure use the earliest (2023) figure and later years the
/// latest one, with the provenance naming the year actually used.
pub fn pue(year: i32) -> (f64, Provenance) {
    let (first, last) = (AWS_FLEET_PUE[0], AWS_FLEET_PUE[AWS_FLEET_PUE.len() - 1]);
    let (_, value, provenance) = AWS_FLEET_PUE
        .iter()
        .copied()
        .find(|(y, _, _)| *y == year)
        .unwrap_or(if year < first.0 { first } else { last });
    (value, provenance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_years_and_clamping() {
        assert_eq!(pue(2023).0, 1.15);
        assert_eq!(pue(2024).0, 1.15);
        assert_eq!(pue(2025).0, 1.14);
        assert_eq!(pue(2019), (1.15, AWS_FLEET_PUE[0].2));
        assert_eq!(pue(2030).1.vintage, "2025");
        assert_eq!(CCF_PUE, 1.135);
    }
}
