"""A small program to trace: python -m steptrace run examples/demo.py"""

TAX = 0.2


def price_with_tax(price):
    tax = price * TAX
    total = price + tax
    return round(total, 2)


def basket(items):
    totals = []
    for name, price in items:
        totals.append(price_with_tax(price))
    return sum(totals)


def main():
    items = [("apple", 0.5), ("bread", 2.25), ("cheese", 7.0)]
    result = basket(items)
    print("basket total:", result)


if __name__ == "__main__":
    main()
