"""Print a SAM template after the AWS SAM transform, as JSON on stdout.

Usage: python3 infra/samtransform.py template.yaml

It runs aws-sam-translator, the library behind `sam build`/`sam deploy`'s
transform, which pip installs together with cfn-lint. The infra tests use the
output to check what CloudFormation would really create (for example the IAM
roles and policies SAM adds on its own), offline: the local CodeUri is swapped
for a placeholder S3 URI, which the translator needs and nothing else reads.
"""

import json
import os
import sys

try:
    from samtranslator.parser.parser import Parser
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.translator import Translator
    from samtranslator.yaml_helper import yaml_parse
except ImportError as e:
    sys.exit(f"samtransform: {e}: install with: pip install cfn-lint (it brings aws-sam-translator)")


def main(path):
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for res in template.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            res.setdefault("Properties", {})["CodeUri"] = "s3://placeholder-bucket/function.zip"
    # The translator builds ARNs for the region it runs in.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        out = Translator(managed_policy_map={}, sam_parser=Parser()).translate(
            sam_template=template, parameter_values={}
        )
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"samtransform: {cause.message}", file=sys.stderr)
        return 2
    json.dump(out, sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: samtransform.py TEMPLATE")
    sys.exit(main(sys.argv[1]))
