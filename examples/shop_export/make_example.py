"""Write a small, deterministic web-shop export: orders.csv and customers.csv.

The shape is what a typical shop back office exports: an order number like ``#1001``,
the customer's e-mail as their id, ``DD/MM/YYYY HH:MM`` timestamps, euro totals with a
decimal comma, a financial status (paid / refunded / voided) and a column the platform
does not know (Payment Method). ``mapping.yml`` beside this file maps it onto the raw
contract; import it with

    ml import --orders examples/shop_export/orders.csv \\
              --customers examples/shop_export/customers.csv \\
              --mapping examples/shop_export/mapping.yml

Buying follows a heterogeneous-rate-with-dropout process (Pareto/NBD): each customer buys
at their own Poisson rate (gamma across customers) until an unobserved exponential
lifetime ends (its rate gamma across customers), so recency and frequency carry signal
about who is still active. Basket values are lognormal around a customer-level mean.
Like real exports it has a little dirt: a guest checkout without an e-mail and one order
exported twice.

    python examples/shop_export/make_example.py [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

SEED = 20240607
CUSTOMERS = 800
START = datetime(2023, 1, 1)
DAYS = 3 * 365  # through 2025-12-31
FIRST_ORDER_NUMBER = 1001

# Pareto/NBD: purchase rate per day ~ Gamma(r, 1/alpha), dropout rate ~ Gamma(s, 1/beta).
RATE_SHAPE, RATE_SCALE = 0.9, 1 / 90  # mean one order every 100 days, widely spread
DROPOUT_SHAPE, DROPOUT_SCALE = 0.8, 1 / 300  # mean lifetime about a year, widely spread
BASKET_MEDIAN_EUR, BASKET_SPREAD = 48.0, 0.45  # across customers (lognormal)
ORDER_SPREAD = 0.35  # around a customer's own basket
STATUS = (("paid", 0.9), ("refunded", 0.07), ("voided", 0.03))
PAYMENT = (("card", 0.55), ("paypal", 0.3), ("klarna", 0.15))
COUNTRIES = (("DE", 0.45), ("AT", 0.12), ("NL", 0.12), ("FR", 0.11), ("BE", 0.08),
             ("ES", 0.07), ("IT", 0.05))
SOURCES = (("google", 0.3), ("organic", 0.2), ("facebook", 0.15), ("newsletter", 0.1),
           ("direct", 0.15), ("referral", 0.1))
FIRST_NAMES = ("anna", "lukas", "marie", "jonas", "lea", "finn", "emma", "paul", "sofia",
               "noah", "julia", "elias", "laura", "ben", "clara", "tim", "nina", "max")
LAST_NAMES = ("schmidt", "muller", "janssen", "dubois", "peeters", "garcia", "rossi",
              "weber", "bakker", "martin", "fischer", "wagner", "moreau", "visser")


def _choice(rng: np.random.Generator, options: tuple[tuple[str, float], ...], size: int):
    names, weights = zip(*options, strict=True)
    return rng.choice(np.array(names), size=size, p=np.array(weights) / sum(weights))


def euro(amount: float) -> str:
    """€1.234,50: the shop's display format (dot thousands, decimal comma)."""
    whole, cents = f"{amount:,.2f}".split(".")
    return f"€{whole.replace(',', '.')},{cents}"


def simulate(seed: int = SEED) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    rng = np.random.default_rng(seed)
    # Acquisition grows over time (a young shop): more signups later in the window.
    signup_day = np.sort(DAYS * rng.beta(1.4, 1.0, CUSTOMERS))
    rate = rng.gamma(RATE_SHAPE, RATE_SCALE, CUSTOMERS)
    lifetime = rng.exponential(1 / rng.gamma(DROPOUT_SHAPE, DROPOUT_SCALE, CUSTOMERS))
    basket = BASKET_MEDIAN_EUR * np.exp(rng.normal(0, BASKET_SPREAD, CUSTOMERS))
    emails = [f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{i + 1}@example.com"
              for i in range(CUSTOMERS)]
    countries = _choice(rng, COUNTRIES, CUSTOMERS)
    sources = _choice(rng, SOURCES, CUSTOMERS)

    events: list[tuple[float, int]] = []
    for c in range(CUSTOMERS):
        t = signup_day[c]  # the first order is placed at signup
        end = min(signup_day[c] + lifetime[c], DAYS)
        while t < end:
            events.append((t, c))
            t += rng.exponential(1 / rate[c])
    events.sort()

    orders = []
    for number, (day, c) in enumerate(events, start=FIRST_ORDER_NUMBER):
        total = round(float(basket[c] * np.exp(rng.normal(0, ORDER_SPREAD))), 2)
        discounted = rng.random() < 0.2
        discount = round(total * float(rng.choice([0.1, 0.15, 0.2])), 2) if discounted else 0.0
        created = START + timedelta(days=float(day))
        orders.append({
            "Order Number": f"#{number}",
            "Customer Email": emails[c],
            "Created At": created.strftime("%d/%m/%Y %H:%M"),
            "Total": euro(total - discount),
            "Discount": f"{discount:.2f}".replace(".", ","),
            "Financial Status": str(_choice(rng, STATUS, 1)[0]),
            "Payment Method": str(_choice(rng, PAYMENT, 1)[0]),
        })
    orders[len(orders) // 3]["Customer Email"] = ""  # a guest checkout
    orders.insert(len(orders) // 2, dict(orders[len(orders) // 2]))  # exported twice

    customers = [{
        "Email": emails[c],
        "First Order Date": (START + timedelta(days=float(signup_day[c]))).strftime("%d/%m/%Y"),
        "Country": str(countries[c]),
        "Source": str(sources[c]),
    } for c in range(CUSTOMERS)]
    return orders, customers


def write(rows: list[dict[str, str]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    orders, customers = simulate(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write(orders, args.out / "orders.csv")
    write(customers, args.out / "customers.csv")
    print(f"{len(orders):,} orders, {len(customers):,} customers -> {args.out}")


if __name__ == "__main__":
    main()
