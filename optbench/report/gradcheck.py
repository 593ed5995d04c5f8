"""`optbench gradcheck`'s report: a line per net and path (or parameter), what the columns mean, the verdict."""

from __future__ import annotations

from optbench.report.table import show_table


def print_gradcheck(rows: list[dict], *, params: bool = False) -> bool:
    """One line per (net, path), or per (net, path, parameter) with `params`; then the verdict line. Returns it."""
    from optbench.checks import by_path, verdict

    table = []
    names = {r["label"].split("/")[0] for r in rows}
    prefix = f"{names.pop()}/" if len(names) == 1 and all("/" in r["label"] for r in rows) else ""
    for r in rows if params else by_path(rows):
        net = r["label"][len(prefix) :] + (f" +{len(r['same'])}" if r["same"] else "")
        net = net if len(net) <= 28 else "…" + net[-27:]  # the table stays within 100 columns
        result = f"FAIL ({r['failed']})" if r["failed"] else ("ok" if r["checked"] else ("-" if params else "unchecked"))
        table.append([net, r["path"], r["param"], *(str(r[k]) for k in ("checked", "kinks", "at_floor")), f"{r['worst']:.2e}", result])
    v = verdict(rows)
    headers = ["net", "path", "param" if params else "worst in", "checked", "kinks", "at floor", "rel err", "result"]
    title = f"{prefix[:-1] or 'numeric'} gradient check (five-point, h={v['h']:g}, at the initial weights)"
    show_table(title, headers, table)
    print(f"rel err = |a-n| / max(|a|+|n|, {v['floor']:g}) per entry, pass <= {v['rtol']:g}; at floor: |a|+|n| < {v['floor']:g}")
    print("kinks: not checkable (a ReLU-type unit changes sides within the stencil), left out of the verdict")
    print("fused: the training step of plain nets (compile_step); general: MLP.backward (norm, dropout, L-BFGS)")
    if any(r["same"] for r in rows):
        print("+N: N more labels with the same net and data, checked once")
    nets = f"{v['nets']} net" + ("s" if v["nets"] != 1 else "")
    if v["ok"]:
        line = (f"PASS: worst rel err {v['worst']:.2e} (limit {v['rtol']:g}) over {v['checked']} entries of {nets}; "
                f"{v['kinks']} kinks, 0 failed")
    else:
        unchecked = f", {v['unchecked']} path(s) with nothing checkable" if v["unchecked"] else ""
        label, path, param = v["where"]
        line = (f"FAIL: {v['failed']} of {v['checked']} entries over the limit {v['rtol']:g}{unchecked}; worst rel err "
                f"{v['worst']:.2e} at {{}} {path} {param}")
        room = 100 - len(line) + 2
        line = line.format(label if len(label) <= room else "…" + label[len(label) - room + 1 :])
    print(line)
    return v["ok"]
