"""An unchanged AWS SDK (boto3) against ses-local: create a template, send a custom
verification email, read the identity's verification status. Prints one JSON object."""
import json
import sys

import boto3

url, key_id, secret = sys.argv[1:4]
ses = boto3.client(
    "ses",
    endpoint_url=url,
    region_name="us-east-1",
    aws_access_key_id=key_id,
    aws_secret_access_key=secret,
)
ses.create_custom_verification_email_template(
    TemplateName="FromBoto3",
    FromEmailAddress="noreply@signup-verify.test",
    TemplateSubject="Confirm your address",
    TemplateContent="<p>Hello from boto3</p>",
    SuccessRedirectionURL="https://app.example/ok",
    FailureRedirectionURL="https://app.example/failed",
)
template = ses.get_custom_verification_email_template(TemplateName="FromBoto3")
sent = ses.send_custom_verification_email(EmailAddress="boto+3@example.com", TemplateName="FromBoto3")
attributes = ses.get_identity_verification_attributes(Identities=["boto+3@example.com", "unknown@example.com"])
listed = ses.list_custom_verification_email_templates(MaxResults=1)
try:
    ses.get_custom_verification_email_template(TemplateName="Missing")
    error_code = None
except ses.exceptions.CustomVerificationEmailTemplateDoesNotExistException as e:
    error_code = e.response["Error"]["Code"]
print(json.dumps({
    "subject": template["TemplateSubject"],
    "messageId": sent["MessageId"],
    "attributes": attributes["VerificationAttributes"],
    "listed": [t["TemplateName"] for t in listed["CustomVerificationEmailTemplates"]],
    "nextToken": listed.get("NextToken"),
    "errorCode": error_code,
}))
