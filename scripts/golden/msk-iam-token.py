# The MSK IAM token for fixed credentials and time, by AWS's own signer
# (aws-msk-iam-sasl-signer-python on botocore), as the golden value.
import base64, datetime
from unittest import mock
from botocore.credentials import Credentials
import botocore.auth
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider as P

fixed = datetime.datetime(2026, 11, 29, 9, 30, 0, tzinfo=datetime.timezone.utc)
class FixedDT(datetime.datetime):
    @classmethod
    def now(cls, tz=None): return fixed
    @classmethod
    def utcnow(cls): return fixed.replace(tzinfo=None)
for creds, name in [
    (Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "static"),
    (Credentials("ASIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLE//token+/="), "session"),
]:
    with mock.patch.object(botocore.auth.datetime, "datetime", FixedDT):
        tok, exp = P._MSKAuthTokenProvider__construct_auth_token("eu-west-1", creds) if hasattr(P, "_MSKAuthTokenProvider__construct_auth_token") else P.__construct_auth_token("eu-west-1", creds)
    url = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)).decode()
    print(name, exp)
    print(url)
