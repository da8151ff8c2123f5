"""Trainers: credit assignment, losses, the training loop and algorithm presets.

* `turnwise.trainers.credit` — who gets how much reward, as pure numpy functions: leave-one-out
  and group-normalised baselines (RLOO, LOOP, GRPO), returns and GAE, GiGPO anchor-state
  groups, SPA-RL's fused progress reward, implicit process rewards (PRIME, OPRL/iStar), G-RA
  gating, IGPO information gain, and per-turn → per-token advantages.
* `turnwise.trainers.losses` — torch: the PPO clipped surrogate (token / turn / sequence ratios,
  symmetric, clip-higher and LOOP bounds, dual clip, token- or sequence-level aggregation, KL
  penalty), the critic's value loss, entropy, and the losses of SPA's progress estimator and of
  OPRL's and PRIME's implicit PRMs.
* `turnwise.trainers.sequences` — trajectories as token rows, padded batches, per-token
  log-probs of a model.
* `turnwise.trainers.sft` — token-exact expert demonstrations and supervised fine-tuning.
* `turnwise.trainers.metrics` — metrics to the console, JSONL, TensorBoard and W&B; the
  learning-curve picture.

Formulas, options and the conventions where papers and code disagree:
docs/trainers/credit-and-losses.md. Importing this package imports no submodule (so never
torch): import the one you need.
"""
