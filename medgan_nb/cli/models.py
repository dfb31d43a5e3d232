"""``python -m medgan_nb models [NAME]``: the shipped models, or one model's card.

`cmd_models(args)`: without a name, one line per shipped model (the default marked with ``*``, parameters,
summary, headline scores); with a name, the card as Markdown (`medgan_nb.models.cards.card_markdown`).
Returns the exit status: 0, or 1 with the reason on stderr for an unknown model or a broken card.
"""

from __future__ import annotations

import argparse
import sys


def cmd_models(args: argparse.Namespace) -> int:
    """List the shipped models (name, default mark, size, summary, headline scores), or print one's card."""
    from ..models import zoo
    from ..models.cards import card_markdown, headline
    try:
        if args.name:
            print(card_markdown(zoo.model_card(args.name)))
            return 0
        cards = [zoo.model_card(n) for n in zoo.list_models()]
    except zoo.PretrainedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not cards:
        print(zoo.no_models_message(zoo.WEIGHTS_DIR))
        return 0
    for card in cards:
        print(f"{'*' if card['default'] else ' '} {card['name']:<20} {card['parameters']:>12,} parameters  "
              f"{card['summary']}")
        if headline(card):
            print(f"  {'':<20} scores: {headline(card)}")
    print("* the default model (enhance/evaluate without --checkpoint); python -m medgan_nb models NAME shows a card")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``models`` command and its options."""
    mo = sub.add_parser("models", help="list the shipped pretrained models, or print one's model card")
    mo.add_argument("name", nargs="?", help="a model's name: print its card (Markdown)")
    mo.set_defaults(func=cmd_models)
