# ruff: noqa: E501 (prose: one answer a line reads better than answers cut at 110 columns)
"""What the demo's users ask and what its assistant answers: a small corpus per topic.

Each topic has opening questions and follow-ups, each with an answer written for it, so a demo
conversation reads like one. `TRIP_CITIES` feeds the one long conversation (a trip planned city
by city), whose questions are made from templates so that none repeats.
"""

from __future__ import annotations

OPENINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "travel": (
        (
            "Plan three days in Lisbon on a budget.",
            "Day one: walk Alfama in the morning and take tram 28 up to the castle; dinner in Mouraria, "
            "where a full meal is about €12. Day two: Belém by train from Cais do Sodré (€2.30), the "
            "monastery cloister and a pastel de nata at the old bakery. Day three: a day trip to Sintra "
            "(€2.40 each way) and back for sunset at the Senhora do Monte viewpoint. A 72-hour Lisboa "
            "Card pays for itself if you ride the trains and visit Belém's museums.",
        ),
        (
            "What is the weather like in Porto in May?",
            "Mild and changeable: days of 18-22 °C, nights around 12 °C, and about ten days of rain in "
            "the month, mostly short showers. Pack a light jacket and shoes that cope with wet "
            "cobblestones; the Atlantic fog usually clears by noon.",
        ),
        (
            "Is it worth renting a car for the Algarve?",
            "Yes, if you want the western beaches and the cliffs at Sagres: buses between the smaller "
            "towns run two or three times a day. Book early for June to September, take full insurance "
            "(the narrow old-town streets are hard on mirrors), and note the A22 motorway's electronic "
            "tolls: ask for a transponder at pick-up.",
        ),
        (
            "Which neighbourhood should I stay in in Madrid?",
            "For a first visit, Las Letras: central, walkable to the Prado and the Retiro, and full of "
            "tapas bars. Malasaña is younger and louder at night; Salamanca is quieter and pricier. "
            "Avoid rooms right on Gran Vía if you are a light sleeper.",
        ),
    ),
    "billing": (
        (
            "Why was I charged twice this month?",
            "I see two charges of $29 on your card: the renewal on the 3rd and a second one on the 4th, "
            "when the first payment was retried after your bank's 3-D Secure check timed out. The "
            "second charge was a duplicate; I have asked for a refund, which takes 5-10 business days "
            "to reach your card.",
        ),
        (
            "Can I switch to the annual plan?",
            "Yes. The annual plan is $290 a year, two months free compared with monthly. If you switch "
            "today, the unused part of this month ($17.40) is credited against the first annual "
            "invoice. You can switch under Settings → Billing → Change plan.",
        ),
        (
            "How do I get an invoice with my company's VAT number?",
            "Add the VAT number under Settings → Billing → Tax details; invoices issued after that carry "
            "it, and you can reissue the last 12 months' invoices from the same page. EU VAT numbers "
            "are checked against VIES, so the company name must match the registration.",
        ),
        (
            "I cancelled last week but was still charged.",
            "Your cancellation was recorded on the 12th, two days after the renewal on the 10th, so "
            "this month was billed. Our policy refunds renewals cancelled within 14 days, so I have "
            "refunded the $29; your account stays active until the end of the period anyway.",
        ),
    ),
    "code": (
        (
            "Why does my Python script say 'list index out of range'?",
            "The index you use is past the end of the list: for a list of length n the last index is "
            "n - 1. The usual causes are a loop over range(len(items) + 1), an empty list where you "
            "expected data, or reading items[i + 1] on the last iteration. Print len(items) just "
            "before the failing line, or iterate with `for item in items:` so there is no index to get "
            "wrong.",
        ),
        (
            "How do I read a CSV with pandas?",
            "`df = pd.read_csv('data.csv')` reads it with the first row as headers. Useful options: "
            "`sep=';'` for semicolon files, `parse_dates=['created_at']` to get datetimes, "
            "`dtype={'zip': str}` to keep leading zeros, and `usecols=[...]` to load only the columns "
            "you need from a big file.",
        ),
        (
            "My Docker build is slow every time. How do I speed it up?",
            "Order the Dockerfile so what changes least comes first: copy requirements.txt and run "
            "`pip install` before copying your source, so the dependency layer is cached. Add a "
            ".dockerignore for .git, node_modules and build output, and turn on BuildKit cache mounts "
            "(`RUN --mount=type=cache,target=/root/.cache/pip`).",
        ),
        (
            "What is the difference between a list and a tuple?",
            "A list can change after it is made (append, remove, assign items); a tuple cannot. Use a "
            "tuple for a fixed group of values, like a coordinate or a row, and a list for a "
            "collection that grows. Tuples can be dictionary keys; lists cannot.",
        ),
    ),
    "cooking": (
        (
            "What can I cook with leeks and potatoes?",
            "Leek and potato soup: sweat two sliced leeks in butter for ten minutes, add three diced "
            "potatoes and a litre of stock, simmer twenty minutes, then blend and season. For "
            "something heartier, layer them in a gratin with cream and thyme and bake at 180 °C for "
            "an hour.",
        ),
        (
            "How long should I rest a steak?",
            "About half its cooking time, and at least five minutes for a 2-3 cm steak, loosely "
            "covered. The juices settle back into the meat, and the centre rises another 2-3 °C, so "
            "take it off the heat a little before your target temperature.",
        ),
        (
            "Can I freeze cooked rice?",
            "Yes: cool it quickly (spread it on a tray, in the fridge within an hour), then freeze it "
            "flat in bags for up to a month. Reheat it until steaming hot all the way through, and "
            "only once.",
        ),
        (
            "What can I use instead of eggs in pancakes?",
            "For each egg: a mashed half banana, 60 g of apple sauce, or a tablespoon of ground flax "
            "mixed with three of water and left for five minutes. Add half a teaspoon of extra baking "
            "powder so they still rise.",
        ),
    ),
    "support": (
        (
            "My export to PDF fails with a timeout.",
            "Exports of more than about 200 pages run past the 60-second limit of the synchronous "
            "export. Use File → Export → 'Email me the PDF': it runs in the background and sends a "
            "link when done. Large embedded images are the usual cause; compressing them under "
            "Settings → Media halves the time.",
        ),
        (
            "How do I reset my password?",
            "Use 'Forgot password' on the sign-in page; the link in the e-mail is valid for 30 "
            "minutes. If your company signs in with SSO, the password is managed by your identity "
            "provider instead, and your IT team can reset it.",
        ),
        (
            "The app logs me out every few minutes.",
            "That happens when the browser blocks our session cookie: check that third-party cookie "
            "blocking has an exception for app.example.com, and that the clock of your computer is "
            "right (a clock more than five minutes off makes sessions expire at once).",
        ),
        (
            "How do I add a colleague to my workspace?",
            "Go to Settings → Members → Invite and enter their e-mail; they get a link valid for seven "
            "days. On the Team plan each member is a seat; invitations do not count until accepted.",
        ),
    ),
}

FOLLOW_UPS: dict[str, tuple[tuple[str, str], ...]] = {
    "travel": (
        (
            "What about getting there from the airport?",
            "The metro's red line runs from the airport to the centre in about 25 minutes for under "
            "€2; a taxi costs €15-20. Buy a rechargeable card at the machines and load single fares.",
        ),
        (
            "Is it safe to walk around at night?",
            "Yes, in the central areas; keep an eye on your phone in crowded trams and at viewpoints, where pickpockets work.",
        ),
        (
            "Can you make that shorter?",
            "Old town and castle, then Belém, then Sintra: about €40 a day with food and transport.",
        ),
        (
            "When is the best time to book?",
            "Six to eight weeks ahead for flights and trains in spring; summer weekends sell out "
            "earlier. Midweek stays are often 20-30% cheaper.",
        ),
    ),
    "billing": (
        (
            "When will the refund show up?",
            "Refunds reach most cards in 5-10 business days; it appears as a credit from EXAMPLE*APP.",
        ),
        (
            "Can I get a receipt for that?",
            "Yes: the receipt is under Settings → Billing → History, and I have e-mailed a copy to "
            "the billing address on the account.",
        ),
        (
            "Will my price go up next year?",
            "Your current price is kept for as long as the plan stays active; changes are announced 30 days ahead.",
        ),
        (
            "Can I pay by bank transfer instead?",
            "Bank transfer is available on annual plans: choose 'Pay by invoice' when switching, and "
            "the invoice comes with our bank details and a 30-day term.",
        ),
    ),
    "code": (
        (
            "Can you show me an example?",
            "```python\nfor i, item in enumerate(items):\n    if i + 1 < len(items):\n        "
            "print(item, items[i + 1])\n```\nThe check stops before the last index, so items[i + 1] "
            "always exists.",
        ),
        (
            "Is there a faster way for big files?",
            "Read it in chunks with `pd.read_csv(path, chunksize=100_000)`, or use `engine='pyarrow'`, which is several times faster on large files.",
        ),
        (
            "Why does that work?",
            "Because each layer is cached until something it depends on changes: keeping the dependency install above the source copy means a code edit no longer invalidates it.",
        ),
        (
            "Does this work on Python 3.9?",
            "Yes: nothing here needs a newer version; `engine='pyarrow'` needs pandas 1.4 or later.",
        ),
    ),
    "cooking": (
        (
            "How many people does that serve?",
            "Four as a main course, six as a starter. It keeps for three days in the fridge and freezes well.",
        ),
        (
            "Can I make it vegan?",
            "Use olive oil instead of butter and vegetable stock, and finish with a spoon of oat cream instead of dairy cream.",
        ),
        (
            "What wine goes with it?",
            "A dry white with some body: an unoaked Chardonnay or a white Côtes du Rhône.",
        ),
        (
            "How do I know when it is done?",
            "Use a thermometer: 52 °C in the centre for rare, 57 °C for medium-rare, 63 °C for medium.",
        ),
    ),
    "support": (
        (
            "It still does not work.",
            "Let us check the account: I see the last attempt failed at 14:02 with the same timeout. I have raised the limit for your workspace to 180 seconds; please try again.",
        ),
        (
            "Do I need to reinstall anything?",
            "No, nothing to install: the change is on our side. Reload the page so the browser picks up the new settings.",
        ),
        (
            "Is there a limit on the number of members?",
            "The Team plan has no limit; you pay per seat. The Starter plan allows up to five members.",
        ),
        (
            "Thanks, that fixed it.",
            "Glad to hear it! I will close this conversation; reply here any time if it comes back.",
        ),
    ),
}

TOOLS = {
    "travel": ("get_weather", "search_flights"),
    "billing": ("lookup_invoice", "lookup_account"),
    "code": ("search_docs",),
    "cooking": ("search_recipes",),
    "support": ("lookup_account", "search_docs"),
}
TOOL_RESULTS = {
    "get_weather": '{"city": "Porto", "forecast": [{"day": "Sat", "high_c": 21, "low_c": 13, "rain_mm": 2.1}]}',
    "search_flights": '{"results": 14, "cheapest": {"carrier": "TP", "price_eur": 89, "departs": "07:35"}}',
    "lookup_invoice": '{"invoices": [{"id": "INV-20931", "amount_usd": 29.0, "status": "paid"}, '
    '{"id": "INV-20954", "amount_usd": 29.0, "status": "paid", "retry_of": "INV-20931"}]}',
    "lookup_account": '{"plan": "team", "seats": 7, "status": "active", "sso": false}',
    "search_docs": '{"hits": [{"title": "Troubleshooting exports", "score": 0.82}, {"title": "Limits", "score": 0.61}]}',
    "search_recipes": '{"hits": [{"title": "Leek and potato soup", "minutes": 40}, {"title": "Gratin", "minutes": 75}]}',
}
# The topics whose answers draw on the knowledge base first (a RETRIEVER span).
RETRIEVAL_TOPICS = frozenset({"code", "support", "billing"})

FRUSTRATED = "This is useless, that is not what I asked."
# What the assistant says when its tool failed, by tool.
FALLBACK_ANSWERS = {
    tool: f"Sorry, I could not {what} just now. Please try again in a few minutes."
    for tool, what in {
        "get_weather": "get the forecast",
        "search_flights": "search for flights",
        "lookup_invoice": "reach the billing system",
        "lookup_account": "open your account's details",
        "search_docs": "search the documentation",
        "search_recipes": "search the recipes",
    }.items()
}
POSITIVE_COMMENTS = ("Thanks, that helped!", "Exactly what I needed.", None)
NEGATIVE_COMMENTS = ("Too long.", "That did not answer my question.", "Too slow.", None)

# The long conversation: a trip planned city by city, four questions a city.
TRIP_CITIES = (
    ("Lisbon", "the Jerónimos Monastery", "bacalhau à brás", "Alfama", 3),
    ("Porto", "the Livraria Lello", "a francesinha", "Ribeira", 3),
    ("Coimbra", "the Joanina Library", "leitão", "the old university", 2),
    ("Madrid", "the Prado", "cocido madrileño", "La Latina", 3),
    ("Seville", "the Real Alcázar", "salmorejo", "Santa Cruz", 3),
    ("Granada", "the Alhambra", "free tapas", "the Albaicín", 2),
    ("Valencia", "the City of Arts and Sciences", "paella valenciana", "El Carmen", 3),
    ("Barcelona", "the Sagrada Família", "pa amb tomàquet", "the Gothic Quarter", 4),
)
# Short questions, so that the city and the sight make most of each: the session evaluators'
# repeated-question check (similarity 0.9) must not take one city's question for another's.
TRIP_TEMPLATES = (
    (
        "Is {sight} in {city} worth the queue?",
        "Yes, it is the one sight not to skip: book a timed ticket online and go at opening time, "
        "before the tour groups. Keep the afternoon for {area}, which is best explored on foot.",
    ),
    (
        "Where do we find good {dish} in {city}?",
        "Try {dish} in {area}. Lunch is served from about 13:00 and dinner late, after 20:30; a "
        "set lunch menu is the best value.",
    ),
    (
        "From {previous} to {city}: train or bus?",
        "The train: about {hours} hours, from the central station. Book a few days ahead for the "
        "cheaper fares; the bus is cheaper still but an hour or two slower.",
    ),
    (
        "Are {nights} nights in {city} enough?",
        "{nights} nights is right: enough for {sight}, an evening in {area} and a slow morning. Add "
        "one if you want a day trip.",
    ),
)
