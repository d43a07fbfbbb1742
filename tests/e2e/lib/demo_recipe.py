"""Writes a copy of recipes/tiny.json that runs from any directory into RUN_DIR.

    demo_recipe.py OUT.json RUN_DIR [--reduced]

--reduced: fewer prompts, test questions, samples and epochs, and a checkpoint every step (the
quick version of the demo that make test kills and resumes)."""
import json
import sys

out, run_dir = sys.argv[1], sys.argv[2]
reduced = "--reduced" in sys.argv[3:]
r = json.load(open("recipes/tiny.json"))
for st in r["pipeline"]:
    a = st.get("args", {})
    for k, v in list(a.items()):
        if isinstance(v, str):
            a[k] = v.replace("${recipe_dir}/tiny/", "${root}/recipes/tiny/")
    if not reduced:
        continue
    if st["name"] == "prompts":
        a["n"] = 40
    if st["name"].startswith("eval"):
        a["bench"] = a["bench"].replace("tasks:test:100", "tasks:test:12")
        a["samples"] = 1
    if st["name"] == "train":
        a["epochs"] = 2
        a["save-every"] = 1
r["run_dir"] = run_dir
json.dump(r, open(out, "w"), indent=1)
