//! Decoding a JWT's claims for diagnostics only. The signature is not checked: STS does that.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;

/// The claims that decide whether STS accepts a Bitbucket OIDC token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// Issuer: `https://api.bitbucket.org/2.0/workspaces/WORKSPACE/pipelines-config/identity/oidc`.
    pub iss: Option<String>,
    /// Audience: `ari:cloud:bitbucket::workspace/UUID`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Subject: `{REPO_UUID}:{STEP_UUID}` (or with the deployment environment).
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: Option<i64>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// Why a token is not a JWT.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("it does not have three dot-separated parts")]
    Shape,
    #[error("its payload is not base64url")]
    Base64,
    #[error("its payload is not a JSON object of claims")]
    Json,
}

/// Decode the payload of a compact JWT. Never includes the token in an error.
pub fn decode_claims(token: &str) -> Result<Claims, JwtError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 3 || parts.iter().take(2).any(|p| p.is_empty()) {
        return Err(JwtError::Shape);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(parts[1])
        .or_else(|_| URL_SAFE.decode(parts[1]))
        .map_err(|_| JwtError::Base64)?;
    serde_json::from_slice::<Claims>(&payload).map_err(|_| JwtError::Json)
}

/// Build an unsigned-looking JWT from claims (tests and the local demo).
pub fn make_test_token(claims_json: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","kid":"demo"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims_json.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(b"not-a-real-signature-only-for-tests");
    format!("{header}.{payload}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_claims() {
        let t = make_test_token(r#"{"iss":"https://i","aud":"ari:a","sub":"{r}:{s}","exp":5}"#);
        let c = decode_claims(&t).expect("jwt");
        assert_eq!(c.iss.as_deref(), Some("https://i"));
        assert_eq!(c.aud, vec!["ari:a"]);
        assert_eq!(c.exp, Some(5));
        let t = make_test_token(r#"{"aud":["a","b"]}"#);
        assert_eq!(decode_claims(&t).expect("jwt").aud, vec!["a", "b"]);
    }

    #[test]
    fn rejects_non_jwts() {
        assert_eq!(decode_claims("abc"), Err(JwtError::Shape));
        assert_eq!(decode_claims("a.!!!.c"), Err(JwtError::Base64));
        assert_eq!(decode_claims("a.YWJj.c"), Err(JwtError::Json));
    }
}
