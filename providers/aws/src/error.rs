//! AWS SDK errors as berth errors: the AWS error code, AWS's own words, the resource's URN and,
//! where it helps, what to do. The SDK has already retried throttling and 5xx responses with
//! back-off (`providers.aws.max_attempts`) by the time an error gets here.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use berth_engine::{CallContext, ErrorKind, ProviderError};

/// Codes with which the AWS APIs berth uses say "no such thing".
const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchEntity",
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBSubnetGroupNotFoundFault",
    "DBParameterGroupNotFound",
    "ReplicationGroupNotFoundFault",
    "CacheSubnetGroupNotFoundFault",
    "CacheParameterGroupNotFound",
    "NoSuchBucket",
    "NotFound",
    "InvalidGroup.NotFound",
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidSecurityGroupRuleId.NotFound",
    "InvalidPermission.NotFound",
    "NotFoundException",
    "CacheClusterNotFound",
];

const THROTTLING_CODES: &[&str] = &["Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown"];

/// What berth needs to know about one failed AWS call.
#[derive(Clone, Debug)]
pub struct AwsError {
    pub code: Option<String>,
    pub message: String,
    pub status: Option<u16>,
    /// The request never got an answer (connection refused, DNS, TLS, timeout).
    pub unreachable: bool,
}

impl AwsError {
    pub fn is_not_found(&self) -> bool {
        self.code.as_deref().is_some_and(|c| NOT_FOUND_CODES.contains(&c)) || (self.code.is_none() && self.status == Some(404))
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The berth error for `action` (an AWS API name) on the resource in `ctx`.
    pub fn at(&self, ctx: &CallContext<'_>, action: &str) -> ProviderError {
        self.describe(&ctx.urn.to_string(), action)
    }

    /// The berth error for `action` on `subject` (a URN, or a state backend location).
    pub fn describe(&self, subject: &str, action: &str) -> ProviderError {
        if self.unreachable {
            return ProviderError::other(format!(
                "{subject}: {action} could not reach AWS: {}; check the network, `providers.aws.endpoint` / AWS_ENDPOINT_URL and the region",
                self.message
            ));
        }
        let hint = match self.code.as_deref() {
            Some(code) if THROTTLING_CODES.contains(&code) => {
                "; AWS kept throttling after every retry: run again later, or raise `providers.aws.max_attempts`"
            }
            Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation") => {
                "; the credentials in use lack this permission: grant it to the caller's IAM policy"
            }
            Some("InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch" | "ExpiredToken") => {
                "; the AWS credentials are invalid or expired: refresh them (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO login)"
            }
            _ if self.status.is_some_and(|s| s >= 500) => "; AWS kept failing after every retry: run again later",
            _ => "",
        };
        let code = self.code.clone().unwrap_or_else(|| match self.status {
            Some(status) => format!("HTTP {status}"),
            None => "no error code".into(),
        });
        let mut error = ProviderError::api(code, format!("{subject}: {action} failed: {}{hint}", self.message));
        if self.is_not_found() {
            error.kind = ErrorKind::NotFound;
        }
        error
    }
}

impl<E> From<SdkError<E, HttpResponse>> for AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    fn from(err: SdkError<E, HttpResponse>) -> AwsError {
        match &err {
            SdkError::ServiceError(service) => {
                let inner = service.err();
                AwsError {
                    code: inner.code().map(str::to_string),
                    message: inner.message().map(str::to_string).unwrap_or_else(|| DisplayErrorContext(inner).to_string()),
                    status: Some(service.raw().status().as_u16()),
                    unreachable: false,
                }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                AwsError { code: None, message: DisplayErrorContext(&err).to_string(), status: None, unreachable: true }
            }
            _ => AwsError {
                code: err.code().map(str::to_string),
                message: DisplayErrorContext(&err).to_string(),
                status: None,
                unreachable: false,
            },
        }
    }
}

/// `result.map_err(fail(ctx, "CreateBucket"))?`: maps an SDK error to a berth error.
pub fn fail<'a, E>(ctx: &'a CallContext<'_>, action: &'a str) -> impl FnOnce(SdkError<E, HttpResponse>) -> ProviderError + 'a
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    move |e| AwsError::from(e).at(ctx, action)
}

/// Turns "not found" into `None`, other errors into berth errors.
pub fn found<T, E>(ctx: &CallContext<'_>, action: &str, result: Result<T, SdkError<E, HttpResponse>>) -> Result<Option<T>, ProviderError>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let e = AwsError::from(e);
            if e.is_not_found() { Ok(None) } else { Err(e.at(ctx, action)) }
        }
    }
}

/// A create refused because the object already exists outside the stack. `lookup` is the search
/// for its importable id (a security group's `sg-…`, a policy's ARN): when it finds one, the error
/// is `AlreadyExists` with that id, from which the engine writes the exact import command; when
/// it does not, the API's refusal and why no id is given, rather than an id that cannot be
/// imported.
pub fn already_exists(
    ctx: &CallContext<'_>,
    action: &str,
    refusal: &AwsError,
    message: String,
    lookup: Result<Option<String>, ProviderError>,
) -> ProviderError {
    let because = match lookup {
        Ok(Some(id)) => return ProviderError::new(ErrorKind::AlreadyExists { id }, message),
        Ok(None) => "it exists, but was not found when looked up to import it (deleted meanwhile?): run again".to_string(),
        Err(e) => format!("it exists, but looking up its id to import it failed: {e}"),
    };
    let mut error = refusal.at(ctx, action);
    error.message.push_str(&format!("; {because}"));
    error
}

/// A request that the SDK refused to build (a required field missing): a bug in berth.
pub fn build_error(e: aws_smithy_types::error::operation::BuildError) -> ProviderError {
    ProviderError::other(format!("internal error: cannot build the AWS request: {e}"))
}

/// Reads an optional setting of a resource: the codes in `absent` mean "not set" (`None`); a
/// not-found of the resource itself is an error of kind `NotFound`.
pub fn optional<T, E>(
    ctx: &CallContext<'_>,
    action: &str,
    absent: &[&str],
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<Option<T>, ProviderError>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let e = AwsError::from(e);
            if e.code.as_deref().is_some_and(|c| absent.contains(&c)) { Ok(None) } else { Err(e.at(ctx, action)) }
        }
    }
}

/// Removes secret values from an error's message (AWS sometimes echoes parameters).
pub fn scrub(mut error: ProviderError, secrets: &[&str]) -> ProviderError {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        error.message = error.message.replace(secret, "[secret]");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_code_subject_and_hint() {
        let e = AwsError { code: Some("Throttling".into()), message: "Rate exceeded".into(), status: Some(400), unreachable: false };
        let p = e.describe("urn:berth:dev::aws:s3:Bucket::b", "PutBucketVersioning");
        assert_eq!(p.code.as_deref(), Some("Throttling"));
        assert!(p.message.contains("urn:berth:dev::aws:s3:Bucket::b: PutBucketVersioning failed: Rate exceeded"), "{}", p.message);
        assert!(p.message.contains("max_attempts"));
        let missing = AwsError { code: Some("NoSuchBucket".into()), message: "gone".into(), status: Some(404), unreachable: false };
        assert!(missing.is_not_found());
        assert_eq!(missing.describe("x", "y").kind, ErrorKind::NotFound);
        let head = AwsError { code: None, message: "".into(), status: Some(404), unreachable: false };
        assert!(head.is_not_found());
        let down = AwsError { code: None, message: "connection refused".into(), status: None, unreachable: true };
        assert!(down.describe("x", "GetObject").message.contains("could not reach AWS"));
    }

    #[test]
    fn already_exists_gives_the_id_found_or_says_why_there_is_none() {
        let urn = berth_engine::Urn::new("dev", None, "aws:iam:Policy", "p").unwrap();
        let ctx = CallContext { urn: &urn, ty: "aws:iam:Policy", name: "p", stack: "dev", timeout: None };
        let refusal =
            AwsError { code: Some("EntityAlreadyExists".into()), message: "exists".into(), status: Some(409), unreachable: false };
        let arn = "arn:aws:iam::123456789012:policy/p";
        let found = already_exists(&ctx, "CreatePolicy", &refusal, "policy `p` already exists".into(), Ok(Some(arn.into())));
        assert_eq!(found.kind, ErrorKind::AlreadyExists { id: arn.into() });
        assert_eq!(found.message, "policy `p` already exists");
        let missing = already_exists(&ctx, "CreatePolicy", &refusal, String::new(), Ok(None));
        assert_eq!((missing.kind, missing.code.as_deref()), (ErrorKind::Api, Some("EntityAlreadyExists")));
        assert!(missing.message.contains("CreatePolicy failed: exists; it exists, but was not found"), "{}", missing.message);
        let failed = already_exists(&ctx, "CreatePolicy", &refusal, String::new(), Err(ProviderError::other("ListPolicies denied")));
        assert_eq!(failed.kind, ErrorKind::Api);
        assert!(failed.message.ends_with("looking up its id to import it failed: ListPolicies denied"), "{}", failed.message);
    }

    #[test]
    fn scrub_masks_secrets() {
        let e = scrub(ProviderError::other("password hunter2hunter2 rejected"), &["hunter2hunter2", ""]);
        assert_eq!(e.message, "password [secret] rejected");
    }
}
