"""Balance: how much of each epoch every concept takes after repeats, regularisation against
training images, and the step counts — all taken from the scan, so they are the run's numbers."""

from __future__ import annotations

from engine.dataset.scan import DatasetSummary

from .findings import Balance, ConceptShare, Finding, finding

LOPSIDED = 4.0  # one concept drawn this many times more than another


def balance_of(summary: DatasetSummary, batch_size: int) -> Balance:
    reg_draws: dict[str, int] = {}
    for item in summary.items:
        if item.is_reg:
            reg_draws[item.concept] = reg_draws.get(item.concept, 0) + item.repeats
    total = summary.num_train_images
    shares = []
    for concept in summary.concepts:
        if concept.is_regularization:
            draws, share = reg_draws.get(concept.name, 0), 0.0
        else:
            draws = concept.image_count * concept.repeats
            share = draws / total if total else 0.0
        shares.append(ConceptShare(concept.name, concept.is_regularization, concept.image_count,
                                   concept.repeats, draws, share))
    return Balance(shares, total, summary.num_reg_images, summary.num_reg_images_used, batch_size,
                   summary.epochs, summary.steps_per_epoch, summary.total_steps)


def check_balance(balance: Balance) -> list[Finding]:
    found: list[Finding] = []
    train = [c for c in balance.concepts if not c.is_regularization and c.draws]
    if len(train) > 1:
        big, small = max(train, key=lambda c: c.draws), min(train, key=lambda c: c.draws)
        if big.draws >= LOPSIDED * small.draws:
            found.append(finding(
                "balance.lopsided", "info",
                f"`{big.name}` is {big.share:.0%} of each epoch and `{small.name}` only {small.share:.0%} "
                f"({big.images}×{big.repeats} against {small.images}×{small.repeats} draws)",
                "if both matter equally, set repeats so images × repeats come out similar", []))
    if balance.reg_images and balance.train_draws:
        if balance.reg_images > balance.train_draws:
            found.append(finding(
                "balance.reg_surplus", "info",
                f"{balance.reg_images} regularisation images (with repeats) for {balance.train_draws} training draws: "
                f"only {balance.reg_draws} are used per epoch, the rest never",
                "fine; remove the unused ones or keep them for later runs", []))
        elif balance.reg_images < balance.train_draws:
            found.append(finding(
                "balance.reg_repeated", "info",
                f"{balance.reg_images} regularisation images (with repeats) for {balance.train_draws} training draws: "
                f"they are repeated to {balance.reg_draws} draws per epoch",
                "more distinct regularisation images keep the class more varied than repeats of a few", []))
    return found
