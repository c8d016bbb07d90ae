"""One adapter per external system; callers never see boto3 dicts or vendor exceptions."""
