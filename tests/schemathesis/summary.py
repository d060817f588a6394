"""Summarises schemathesis NDJSON reports: requests sent and answers per
operation and status. Exits 1 on a 5xx other than 503 (a documented 503 is
checked against the document by schemathesis itself)."""

import collections
import glob
import json
import sys

bad = []
for report in sys.argv[1:]:
    statuses = collections.Counter()
    per_op = collections.defaultdict(collections.Counter)
    sent = 0
    for path in glob.glob(f"{report}/*.ndjson"):
        with open(path, encoding="utf-8") as f:
            for line in f:
                event = json.loads(line).get("ScenarioFinished")
                if not event:
                    continue
                label = event["recorder"].get("label", "?")
                for i in event["recorder"].get("interactions", {}).values():
                    sent += 1
                    status = (i.get("response") or {}).get("status_code")
                    statuses[status] += 1
                    per_op[label][status] += 1
                    if status is not None and status >= 500 and status != 503:
                        bad.append(f"{i['request']['method']} {i['request']['uri']} -> {status}")
    name = report.rstrip("/").rsplit("/", 1)[-1].removeprefix("report-")
    print(f"{name}: {sent} requests sent; statuses {dict(sorted(statuses.items(), key=str))}")
    for label, c in sorted(per_op.items()):
        print(f"  {label}: {dict(sorted(c.items(), key=str))}")
if bad:
    print("5xx other than 503:", *bad[:20], sep="\n  ")
    sys.exit(1)
