//! TEMPORARY stub until reg-cred merges.
#![allow(missing_docs, dead_code)]
use std::path::PathBuf;
pub struct Credential {
    pub username: String,
    pub secret: secrecy::SecretString,
}
#[derive(Debug, thiserror::Error)]
#[error("credentials")]
pub struct CredentialError;
pub struct AuthFile(PathBuf);
impl AuthFile {
    pub fn locate() -> AuthFile {
        AuthFile(PathBuf::new())
    }
    pub fn at(p: PathBuf) -> AuthFile {
        AuthFile(p)
    }
    pub fn get(&self, _r: &str) -> Result<Option<Credential>, CredentialError> {
        Ok(None)
    }
}
pub enum Where {
    File(PathBuf),
    Helper(String),
}
impl AuthFile {
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
    pub fn store(&self, _r: &str, _c: &Credential) -> Result<Where, CredentialError> {
        Ok(Where::File(self.0.clone()))
    }
    pub fn erase(&self, _r: &str) -> Result<bool, CredentialError> {
        Ok(false)
    }
}
