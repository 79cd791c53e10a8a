//! Choosing the response a forking proxy sends upstream (RFC 3261 §16.7 step 6, with
//! Kamailio's priorities: 6xx over 3xx over 4xx over 5xx; 401/407/415/420/484 first
//! among the 4xx).

/// Lower is better.
pub fn priority(code: u16) -> u32 {
    let c = code as u32;
    match code {
        200..=299 => c - 200,
        600..=699 => 1000 + c - 600,
        300..=399 => 3000 + c - 300,
        401 | 407 | 415 | 420 | 484 => 4000 + c - 400,
        400..=499 => 4100 + c - 400,
        500..=599 => 5000 + c - 500,
        100..=199 => 11000 + c,
        _ => 10000 + c,
    }
}

/// Index of the best final response among the branches' codes.
pub fn best(codes: &[u16]) -> Option<usize> {
    codes
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| priority(**c))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_like_kamailio() {
        assert_eq!(best(&[486, 603, 302]), Some(1));
        assert_eq!(best(&[500, 404]), Some(1));
        assert_eq!(best(&[404, 407]), Some(1));
        assert_eq!(best(&[408, 503, 480]), Some(0));
        assert_eq!(best(&[]), None);
    }
}
