"""What the frontier's runs show (RESULTS.md prints these lines under the table). Written from the runs'
outputs (runs/frontier/*/eval_*/results.json, metrics.jsonl); rerun `make frontier` to check them."""

FINDINGS: list[str] = [
    "### Why adversarial training collapses here, and how we know",
    "",
    "- **The standard detector's cues are smaller than one grey level.** The control (the identical fine-tune "
    "without attacks) keeps clean AUC 0.781 at 64 px, and PGD-20 at ε = 0.5/255 already flips 99.6% of its "
    "test faces (accuracy 0.004); its median true-class margin is 0.53 log-odds. A perturbation that no 8-bit "
    "image can even store moves its decisions: the DFDC fakes it separates differ from the reals by faint, "
    "high-frequency texture of about the same amplitude as the attack, so an attacker can add or remove the "
    "evidence.",
    "- **PGD-AT at 1/255 collapses to a constant.** Its training loss ends at 0.70 ≈ ln 2 (the loss of "
    "answering 0.5 for every face), training accuracy on its own adversarial faces stays at 0.38-0.40, and "
    "on the test faces it answers p(fake) within 0.499-0.501 for the middle half; 21-24% of them get one "
    "identical output (`runs/frontier/pgd-1*/eval_clean/results.json`). Clean AUC falls from 0.781 to 0.64. "
    "No feature that survives ε = 1/255 was found within the budget, and the cheapest minimizer of the "
    "adversarial loss is to stop discriminating.",
    "- **Its robust accuracy was gradient masking.** With ReLU6, the constant regions have an all-zero input "
    "gradient on 17% of the test faces: the sanity check *input gradients are non-zero* fails, and PGD-20 "
    "accuracy is flat in ε (0.188 / 0.184 / 0.160 at 0.5 / 1 / 2/255), the signature of masking, not of "
    "robustness. Swapping ReLU6 for SiLU (`pgd-1-silu`, the one change) removes the dead gradients: every "
    "check passes and accuracy now falls with ε as it should (0.414 / 0.211 / 0.020). The earlier "
    "`dfdc-faces-pgd-at` recipe's 0.155 at 2/255 (reals 0.000) is of the same kind.",
    "- **What collapses, by direction:** every adversarially trained model can frame reals (worst-case "
    "accuracy on reals 0.000-0.023 at 1/255) while some fakes resist (0.28-0.31 at 1/255): the clean outputs "
    "lean to *fake* (PGD-AT: 0.75-0.78 of fakes but 0.40-0.45 of reals right), so a real face needs only a "
    "small push across 0.5.",
    "- **Not the cause: numerical precision.** bf16 autocast rounds the normalized pixels the first "
    "convolution sees to steps of 0.5-0.9/255, so it could blunt a 1/255 training attack; the same run in "
    "fp32 (`pgd-1-fp32`) ends the same (clean AUC 0.640 vs 0.639, worst case 0.152 vs 0.145 at 1/255). fp32 "
    "was faster on this CPU (62-66 vs 55 img/s for 2-step PGD-AT at 64 px), so `deepshield train` now "
    "uses fp32 on CPU unless its probe measures bf16 faster.",
    "- **Not the cure: TRADES β = 1.** It keeps discriminating (clean AUC 0.753) because its clean "
    "cross-entropy dominates, but gains nothing under attack (PGD-20 0.004 at 1/255).",
    "- **The validation attack.** PGD-10 on every validation face reads 0.207 / 0.217 / 0.200 where PGD-20 "
    "on the same faces reads 0.167 / 0.193 / 0.190 (pgd-1 / fp32 / silu): 1-4 points optimistic, against "
    "the 0.18 vs 0.000 that the earlier 3-step attack showed. `best.pt` is picked by PGD-10 now "
    "(`--val-attack-steps 10`, the default).",
]
