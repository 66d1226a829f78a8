"""Big values in scope (issue 15, item 1): a 200,000-item list, a
100,000-item dict and a 10 MB str stay in scope, unchanged, while a loop
changes a few small locals, and a list grows by one item per iteration.
Untraced it costs what the loop costs; traced, a line must not cost more
because of what else is in scope (it cost 25-40 ms a line when every
changed container was rendered whole)."""

UNITS = 3_000  # loop iterations at full size


def run(units=UNITS):
    # Made without a traced line per item (a comprehension would be one).
    big = list(range(200_000))
    table = dict(zip(range(100_000), map(str, range(100_000))))
    text = "x" * 10_000_000
    grown = []
    acc = 0
    for i in range(units):
        acc = (acc * 31 + big[i % len(big)] + len(table[i])) % 1_000_003
        grown.append(i)
    return acc + len(text) + len(grown)


if __name__ == "__main__":
    print(run())
