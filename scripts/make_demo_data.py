#!/usr/bin/env python3
# ruff: noqa: E501  (template data: long lines are the natural form)
"""Write openear's bundled SYNTHETIC demo sample: ``src/openear/data/demo/posts.jsonl``.

    python scripts/make_demo_data.py                 # the bundled file (2,000 posts)
    python scripts/make_demo_data.py --out x.jsonl   # elsewhere
    python scripts/make_demo_data.py --n 20000 --out big.jsonl   # a bigger sample (the benchmark uses this)

Every text is composed by this script from templates and random slot fillers; nothing is copied from real posts.
Brands, publishers, handles, e-mail addresses, phone numbers and links are made up (``.example`` domains,
reserved "drama" phone ranges where a country has one). The output is deterministic: a fixed seed and a fixed
anchor date give byte-identical files on every run and every machine.

Mix (for the default 2,000 posts, proportional for other sizes): about 60% English (US and UK) and 40% Spanish
(Spain); about 10% news articles (some about a strike: kept as labour news); about 5% of social posts about
protected topics (organising, strikes, petitions; being contacted by researchers or journalists), which the
guard must withhold; about 3% items from private, closed or secret groups, which the guard must reject;
near-duplicate "copy-pasta" groups; an app-outage volume spike 3-4 days before the anchor; personal data to
scrub (e-mails, phones, @handles, u/names, profile links) and a few hostile strings (markup, quotes, emoji).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SEED = 20261128
ANCHOR = datetime(2026, 11, 28, 23, 0, 0, tzinfo=UTC)
DAYS = 60
DEFAULT_N = 2000
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "openear" / "data" / "demo" / "posts.jsonl"

# --------------------------------------------------------------------------------------------------------------
# Sources (the demo declares the same names in ``openear.demo.DEMO_SOURCES``)


@dataclass(frozen=True)
class Src:
    name: str
    kind: str  # social | news
    lang: str
    visibility: str
    share: float  # of all items


SOURCES = (
    Src("reddit-flexdrivers", "social", "en", "public", 0.36),
    Src("driver-forum", "social", "en", "consented", 0.20),
    Src("foro-repartidores", "social", "es", "consented", 0.34),
    Src("news-en", "news", "en", "public", 0.05),
    Src("noticias-es", "news", "es", "public", 0.05),
)
SOCIAL = [s for s in SOURCES if s.kind == "social"]
NEWS = [s for s in SOURCES if s.kind == "news"]

# Posting volume by weekday (Mon..Sun): drivers post more at weekends.
WEEKDAY_WEIGHT = (0.85, 0.8, 0.8, 0.85, 1.05, 1.45, 1.4)
# By hour of day (UTC), roughly: quiet at night, peaks after morning blocks and in the evening.
HOUR_WEIGHT = (1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 4, 4, 5, 5, 5, 5, 6, 7, 8, 8, 7, 5, 3, 2)

# Category mix of ordinary social posts (per cent); subcategories are chosen uniformly within a category.
CATEGORY_WEIGHT = {
    "app_issue": 11,
    "pay_tips": 20,
    "scheduling_offers": 15,
    "delivery_operations": 13,
    "account_status": 10,
    "support": 9,
    "safety": 8,
    "working_conditions": 8,
    "other": 6,
}
SENTIMENT_WEIGHT = {"negative": 60, "neutral": 24, "positive": 16}
SHORT = {"negative": "n", "neutral": "u", "positive": "p"}

# --------------------------------------------------------------------------------------------------------------
# Slot fillers

CITIES = {
    "US": ["Phoenix", "Dallas", "Atlanta", "Tampa", "Denver", "Columbus", "Charlotte", "Sacramento", "Austin",
           "Las Vegas", "Orlando", "Nashville", "Indianapolis", "San Antonio"],
    "GB": ["Leeds", "Croydon", "Bristol", "Manchester", "Coventry", "Glasgow", "Milton Keynes", "Reading",
           "Sheffield", "Nottingham", "Cardiff", "Luton"],
    "ES": ["Madrid", "Barcelona", "Valencia", "Sevilla", "Zaragoza", "Málaga", "Bilbao", "Alicante", "Murcia",
           "Getafe", "Valladolid", "Córdoba", "Vigo", "Palma"],
}
STATION_CODES = {"US": ["DAX3", "DFW7", "DPH2", "DTA5", "DAT9", "DSA2"], "GB": ["DLE1", "DBR4", "DMA6", "DCR2"],
                 "ES": ["MAD9", "BCN3", "VLC2", "SVQ1", "MAD4"]}
STORES_EN = ["Whole Foods", "the grocery store", "the pharmacy", "the sub-same-day site", "the fresh store"]
STORES_ES = ["el súper", "la tienda", "el centro logístico", "el almacén de Getafe", "la farmacia"]
APP_NAME_EN = ["the app", "the Flex app", "the driver app", "this app", "the app"]
APP_NAME_ES = ["la app", "la aplicación", "la app", "la app de reparto"]
VERSIONS = ["4.12.0", "4.12.1", "4.12.2"]

FIRST_PART = ["driver", "flex", "route", "van", "courier", "parcel", "night", "block", "road", "box"]
SECOND_PART = ["runner", "guy", "gal", "life", "king", "queen", "hustler", "mike", "jay", "pro", "dad", "mom"]
FIRST_ES = ["repartidor", "rider", "currante", "ruta", "moto", "furgo", "paquete", "reparto"]
SECOND_ES = ["madrid", "bcn", "sevilla", "vlc", "loco", "pro", "nocturno", "feliz", "cansado", "90", "del_sur"]

US_PHONES = ["(602) 555-0147", "214-555-0182", "404.555.0119", "(813) 555-0163", "720 555 0134", "+1 512 555 0175"]
UK_PHONES = ["07700 900123", "07700 900457", "020 7946 0958", "0161 496 0721", "+44 7700 900384"]
ES_PHONES = ["612 345 678", "655 12 34 56", "+34 699 876 543", "911 234 567", "634 901 288"]

HOSTILE = [
    "<script>alert(1)</script>",
    '"quotes" and \'apostrophes\' & <b>bold</b>',
    "</textarea><img src=x onerror=alert(1)>",
    "{{7*7}} ${7*7} %s %(name)s",
    "'; DROP TABLE posts; --",
    "😡📦🚗💸🔥",
    "ñandú, camión, pingüino, façade, naïve",
    "\\u0000 \\n literal backslashes C:\\drivers\\new",
]

# --------------------------------------------------------------------------------------------------------------
# Templates. ``{slot}`` names are filled from ``_fill``; sentiment: n(egative), u (neutral), p(ositive).
# Each entry: (sentiment, text). Texts must not mention organising, strikes, protests, petitions, surveys,
# researchers or journalists (those live in PROTECTED only), or the guard would withhold them.

T = dict[str, dict[str, dict[str, list[tuple[str, str]]]]]

SOCIAL_TEMPLATES: T = {
    "en": {
        "app_issue": {
            "login_access": [
                ("n", "Can't log in to {app} since last night. It just says 'something went wrong' and sends me back to the start screen."),
                ("n", "Locked out AGAIN. Two-step code never arrives, so I lost a {hours} hour block sitting in the car."),
                ("n", "{app} logged me out mid-route and wants me to verify my identity with a selfie. In the rain. Great."),
                ("u", "If you get the endless login loop, clearing the cache and reinstalling fixed it for me."),
            ],
            "crash_freeze": [
                ("n", "{app} froze on the delivery screen with {n} stops left, had to force close it twice."),
                ("n", "App crashes every time I open the itinerary. Been like this for days, anyone else?"),
                ("n", "Screen just goes white and freezes when I try to mark a package delivered. So much wasted time."),
                ("u", "Tip for anyone whose app freezes: turn off battery saver, it kills the app in the background."),
            ],
            "navigation_gps": [
                ("n", "The in-app navigation sent me down a dirt road to a locked gate. GPS pin was half a mile off."),
                ("n", "GPS keeps saying I'm not at the location when I'm literally standing at the door."),
                ("n", "Map keeps rerouting me in circles around the same block, added 40 minutes to my route."),
                ("u", "You can switch navigation to Google Maps in settings, works way better than the built-in one imo."),
            ],
            "offers_not_loading": [
                ("n", "Offers screen stuck on the spinner all morning. Refreshing does nothing."),
                ("n", "Is the offers page broken for everyone or just me? Nothing loads, not even the 'no offers' message."),
                ("u", "Offers not loading for me usually means the app needs an update, check the store."),
            ],
            "scanning_status": [
                ("n", "Scanner won't read half the labels and then the package shows as missing. Now it's on me?"),
                ("n", "App marked {n} packages as 'undeliverable' that I actually delivered. Photos and everything."),
                ("n", "Camera won't focus on the barcode, have to type every tracking number by hand. Kill me."),
                ("u", "If a package won't scan, you can enter the last digits manually from the options menu."),
            ],
            "update_device": [
                ("n", "New update drains my battery to 20% by noon. Had to buy a power bank just to finish."),
                ("n", "They dropped support for my phone with this update. So I need a new phone to keep working?"),
                ("u", "Heads up: the latest update needs Android 11 or newer."),
                ("p", "Honestly the new update fixed the lag on the delivery screen, app feels way snappier."),
            ],
        },
        "pay_tips": {
            "missing_tips": [
                ("n", "Customer told me at the door they tipped {cur}{tip}. Earnings show zero tip. Where did it go??"),
                ("n", "Tips missing from {n} of my blocks this week. Support says 'tips can take 48 hours'. It's been 5 days."),
                ("n", "Delivered a heavy order up 3 flights of stairs, tip vanished from the breakdown the next day."),
                ("u", "Tips usually post a day or two after the block ends, don't panic if you don't see them right away."),
                ("p", "Got a {cur}{tip} tip on a {cur}{amt} block today. Faith in humanity restored lol."),
            ],
            "pay_rates": [
                ("n", "{cur}{amt} for a {hours} hour block in {city} is an insult. That used to be the minimum per hour."),
                ("n", "Base rates dropped again. After gas I'm clearing maybe {cur}{net} an hour."),
                ("n", "Same routes, more stops, less pay. Every month it's a little worse."),
                ("u", "Rates in {city} are {cur}{amt} for a {hours} hour block right now, no surge."),
                ("p", "Surge was on all weekend, made {cur}{big} in two days. Not bad at all."),
            ],
            "payment_delay": [
                ("n", "Pay was supposed to land Tuesday and it's Friday. Rent doesn't wait."),
                ("n", "My earnings say 'processing' for a week now. Anyone else not paid?"),
                ("u", "Instant pay costs a small fee but it's there if you need cash the same day."),
            ],
            "expenses": [
                ("n", "Between gas, tires and insurance I'm basically paying to work some weeks."),
                ("n", "Did the math: {cur}{amt} block, {n} miles, gas alone ate a third of it."),
                ("u", "Keep every gas receipt and log your miles, the mileage deduction is what makes this worth it."),
            ],
            "incentives": [
                ("n", "The 'bonus' for {n} blocks this week is {cur}10. Ten. After 30+ hours."),
                ("p", "Holiday bonus actually paid out on time, nice surprise."),
                ("u", "Incentives show under the promotions tab, they're different in every region."),
            ],
        },
        "scheduling_offers": {
            "availability": [
                ("n", "Refreshing for blocks since 5am and got nothing. Zero. Three days in a row."),
                ("n", "No blocks in {city} all week. How is anyone supposed to pay bills like this?"),
                ("n", "Blocks disappear the second they show up. Tap, 'no longer available'. Every time."),
                ("u", "Set your availability the night before, reserved offers show up around midnight for me."),
                ("p", "Love that I can pick blocks around my kids' school hours. That's the whole point for me."),
            ],
            "cancellations": [
                ("n", "Block got cancelled 20 minutes before start while I was already driving to the station."),
                ("n", "They cancelled my reserved blocks for tomorrow with no explanation. Whole day gone."),
                ("u", "If you forfeit a block, do it at least 45 minutes before start or it counts against you."),
            ],
            "bots_grabbers": [
                ("n", "Bots grab every block instantly. Fair drivers don't stand a chance."),
                ("n", "Guy at the station openly bragging about his block grabber app. Nothing happens to them."),
                ("u", "Using a grabber app can get you deactivated, not worth the risk."),
            ],
            "shift_changes": [
                ("n", "Block times changed from 3 to 4.5 hours overnight and the pay barely moved."),
                ("n", "Got moved to the 6am wave without asking. I can't do childcare at that hour."),
                ("u", "Longer blocks are showing up in {city} now, 4 and 5 hours instead of 3."),
            ],
        },
        "delivery_operations": {
            "station_waits": [
                ("n", "Waited {mins} minutes at the {station} just to get my route. Unpaid, obviously."),
                ("n", "Line of vans out of the {station} lot at {code} again. Clock's ticking on my block and I haven't moved."),
                ("n", "Another morning sitting in the {station} queue for an hour. They don't pay for the wait."),
                ("u", "At {code} the wait is shorter if you show up 10 minutes after block start, not before."),
            ],
            "route_size": [
                ("n", "{n} stops in a 3 hour block, spread over two towns. Not humanly possible."),
                ("n", "Routes keep getting bigger. Came back with 12 packages and got a warning for it."),
                ("p", "Easy route today, 30 stops all in one apartment complex. Done in 2 hours."),
            ],
            "package_volume": [
                ("n", "Car packed to the roof, couldn't even see out the back window. This can't be safe."),
                ("n", "They gave me {n} bags and 20 oversize boxes for a sedan. Half of it didn't fit."),
                ("u", "Peak season is starting, expect more packages per route from now until January."),
            ],
            "addresses_access": [
                ("n", "Gate code missing, customer not answering, building has no mailroom. What am I supposed to do?"),
                ("n", "Address pin put me on the wrong side of a river. Customer complained I was late."),
                ("u", "For apartment complexes without access codes, call the customer through the app first."),
            ],
            "delivery_partner": [
                ("n", "Worked for a DSP for a month, they wanted 10 hour days and wrote us up for bathroom breaks."),
                ("u", "DSP drivers are employees of the partner company, Flex drivers are contractors. Different rules."),
            ],
            "returns": [
                ("n", "Came back with undeliverables and waited 45 minutes for someone to take the returns."),
                ("u", "Returns go in the cage by the door at {code}, just scan them back in there."),
            ],
        },
        "account_status": {
            "deactivation": [
                ("n", "Deactivated this morning after {years} years. Automated email, no reason given, no phone number."),
                ("n", "Got the deactivation email for 'delivery quality'. My rating was Fantastic last week."),
                ("n", "Account deactivated because the app said I delivered to the wrong address. GPS was wrong, not me."),
                ("u", "If you get deactivated you have 10 days to send the appeal form, don't wait."),
                ("p", "My appeal went through!! Reinstated after 2 weeks. Don't give up guys."),
            ],
            "ratings_standing": [
                ("n", "Standing dropped from Great to Fair because of one late block that was caused by the station."),
                ("n", "One customer says 'package not received' and my rating tanks. No way to dispute it."),
                ("p", "Back to Fantastic standing after a rough month. Feels good."),
                ("u", "Your standing is recalculated every week from the last 100 deliveries or so."),
            ],
            "background_check": [
                ("n", "Background check 'in progress' for {n} weeks now. I already quit my other gig for this."),
                ("u", "The background check renews every year, you get an email to re-consent."),
            ],
            "onboarding": [
                ("n", "Signed up in {city} a month ago and I'm still on the waitlist."),
                ("u", "Onboarding was: upload license, insurance, background check, watch the videos. Took about 10 days."),
                ("p", "Got approved in 4 days, did my first block today. Nervous but went fine!"),
            ],
        },
        "support": {
            "unreachable": [
                ("n", "Called support {n} times, hold music for 40 minutes and then the line drops."),
                ("n", "There's no way to actually reach a human at driver support anymore. Chat is a bot."),
                ("n", "Support phone number removed from the app? Where am I supposed to call when I'm stuck at a locked building?"),
            ],
            "unhelpful": [
                ("n", "Support sent the same copy-paste reply three times: 'we understand your frustration'. Solve it then."),
                ("n", "Asked support a simple question about my pay and got a canned reply about app updates. Useless."),
                ("n", "Every support answer is the same script. They don't even read what you wrote."),
                ("p", "Shoutout to the support agent who fixed my missing block pay in 5 minutes. Rare but it happens."),
            ],
            "slow_resolution": [
                ("n", "Opened a ticket about missing pay {n} weeks ago. Still 'under review'."),
                ("n", "Support said 3-5 business days. It's been 3 weeks. Nothing."),
                ("u", "Email support keeps a written record, better than chat if you need to escalate later."),
            ],
        },
        "safety": {
            "accidents_injuries": [
                ("n", "Slipped on ice carrying a 40 lb box, hurt my back. No coverage because we're contractors."),
                ("n", "Got rear-ended in the middle of a block. App just wanted to know if the packages were ok."),
                ("u", "If you have an accident on a block, report it in the app right away, there's a form for it."),
            ],
            "weather_heat": [
                ("n", "Delivering in a thunderstorm with lightning and the app says 'stay safe'. Thanks."),
                ("n", "Roads were pure ice this morning and blocks still went out like normal."),
                ("u", "Keep a blanket and water in the car during winter blocks, roads get bad fast."),
            ],
            "animals": [
                ("n", "Dog came flying out of the garage and bit my leg. Owner said 'he's friendly'."),
                ("n", "Two loose dogs at the same address every week. The app has no way to flag it."),
                ("u", "Dog spray on the keychain. Don't deliver without it in rural areas."),
            ],
            "harassment_crime": [
                ("n", "Got followed back to my car by a guy yelling at me over a late package. Scary stuff."),
                ("n", "Someone tried to break into my car while I was at the door. Packages everywhere."),
            ],
            "vehicle_damage": [
                ("n", "Curb took out my tire on a rural route. {cur}{amt} out of pocket, all on me."),
                ("n", "Scratched my car backing out of a tight driveway, insurance won't cover business use."),
            ],
        },
        "working_conditions": {
            "workload_pressure": [
                ("n", "The pressure to finish on time is insane. Running between stops, no time to eat."),
                ("n", "They keep adding stops and the time doesn't change. You either rush or get flagged."),
                ("n", "It's nonstop. Scan, drive, run, photo, repeat. I'm exhausted every single day."),
            ],
            "hours_breaks": [
                ("n", "No breaks, no bathrooms on rural routes. Hold it for 4 hours."),
                ("n", "Did 3 blocks back to back, 12 hours on the road, barely ate anything."),
                ("p", "Best part of this gig is I decide when I work. Took Friday off, nobody to ask."),
            ],
            "warehouse_conditions": [
                ("n", "The {station} is freezing in the morning and boiling by noon, no water anywhere."),
                ("n", "Heat in the {station} was unbearable today. People nearly fainting in line."),
                ("u", "There's a water fountain by the back door at {code} if anyone needs it."),
            ],
            "treatment": [
                ("n", "We're treated like numbers. Nobody at the {station} even says hi, just 'scan and go'."),
                ("n", "Heat index over 100 and they still expect 40 stops in 3 hours. We're not robots."),
                ("p", "New {station} staff at {code} are great, they actually help load and say thanks."),
            ],
        },
        "other": {
            "": [
                ("p", "Just finished my 1,000th delivery today! Thanks to everyone here for the tips when I started."),
                ("p", "Love this job on a nice day. Music on, good route, done by lunch."),
                ("u", "New driver here in {city}, anything you wish you knew before your first block?"),
                ("u", "What car is everyone using? Thinking about switching to a hybrid."),
                ("p", "Customer left cookies and a thank you note on the porch. Made my whole week."),
                ("u", "Does anyone else listen to audiobooks on routes? Need recommendations."),
            ],
        },
    },
    "es": {
        "app_issue": {
            "login_access": [
                ("n", "No puedo entrar en {app} desde anoche, me dice 'error desconocido' y vuelve al inicio."),
                ("n", "El código de verificación no llega nunca y me he quedado sin bloque esperando en el coche."),
                ("u", "Si os pasa lo del bucle al iniciar sesión, borrad caché y reinstalad, a mí me funcionó."),
            ],
            "crash_freeze": [
                ("n", "La app se cuelga en la pantalla de entrega y me quedan {n} paradas. Tengo que cerrarla cada dos por tres."),
                ("n", "{app} se congela cada vez que abro el itinerario. Llevo así días, ¿a alguien más le pasa?"),
                ("n", "Pantalla en blanco al marcar entregado. Qué desesperación, de verdad."),
                ("u", "Truco: quitad el ahorro de batería, porque si no el móvil cierra la app en segundo plano."),
            ],
            "navigation_gps": [
                ("n", "El GPS de la app me ha mandado a un camino de tierra con una valla cerrada. La ubicación estaba fatal."),
                ("n", "La app dice que no estoy en la dirección y estoy literalmente en la puerta."),
                ("u", "En ajustes se puede poner Google Maps para navegar, va mucho mejor que el mapa de la app."),
            ],
            "offers_not_loading": [
                ("n", "La pantalla de ofertas lleva toda la mañana cargando. No sale nada."),
                ("n", "¿Se os cargan las ofertas? A mí la app se queda pensando y no muestra ni bloques ni nada."),
            ],
            "scanning_status": [
                ("n", "El escáner no lee las etiquetas y luego el paquete sale como perdido. Y la culpa es mía, claro."),
                ("n", "Me ha marcado {n} paquetes como no entregados y los entregué todos, con foto."),
                ("u", "Si un paquete no escanea, se puede meter el código a mano desde el menú."),
            ],
            "update_device": [
                ("n", "Con la última actualización la batería me dura hasta mediodía. Vaya tela."),
                ("n", "Ya no soportan mi móvil con la nueva versión. ¿Me tengo que comprar otro para currar?"),
                ("p", "La actualización nueva ha arreglado los tirones, ahora la app va fina."),
            ],
        },
        "pay_tips": {
            "missing_tips": [
                ("n", "El cliente me dijo que me había dejado {tip} € de propina y en las ganancias sale cero. ¿Dónde están las propinas?"),
                ("n", "Me faltan las propinas de {n} bloques esta semana. Soporte dice que tardan 48 horas, y ya van 5 días."),
                ("n", "Otra vez propinas que desaparecen del desglose al día siguiente. Esto no es normal."),
                ("u", "Las propinas suelen aparecer uno o dos días después del bloque, no os agobiéis."),
                ("p", "Hoy me han dado {tip} € de propina en un pedido pequeño. Todavía queda gente maja."),
            ],
            "pay_rates": [
                ("n", "{amt} € por un bloque de {hours} horas en {city}. Y de ahí quita gasolina y la cuota de autónomo."),
                ("n", "Han vuelto a bajar las tarifas. Mismas rutas, más paradas, menos dinero."),
                ("n", "Con lo que pagan ahora no salen las cuentas, tío. Cada mes un poco peor."),
                ("u", "En {city} ahora pagan unos {amt} € por bloque de {hours} horas, sin incentivos."),
                ("p", "Este finde ha habido tarifa alta y he sacado {big} € en dos días. Nada mal."),
            ],
            "payment_delay": [
                ("n", "El pago tenía que llegar el martes y estamos a viernes. El alquiler no espera."),
                ("n", "Llevo una semana con las ganancias en 'procesando'. ¿A alguien más no le han pagado?"),
            ],
            "expenses": [
                ("n", "Entre gasolina, seguro, ruedas y autónomos, hay semanas que pago yo por trabajar."),
                ("n", "He hecho cuentas: bloque de {amt} €, {n} km, y la gasolina se come un tercio."),
                ("u", "Guardad todos los tickets de gasolina para la declaración trimestral, que desgrava."),
            ],
            "incentives": [
                ("n", "El 'bonus' por hacer {n} bloques esta semana son 10 €. Diez euros."),
                ("p", "Este mes el incentivo de Navidad lo han pagado a tiempo, sorpresa."),
            ],
        },
        "scheduling_offers": {
            "availability": [
                ("n", "Desde las 6 refrescando la app y ni un bloque. Tres días igual."),
                ("n", "En {city} no hay bloques en toda la semana. ¿Cómo se supone que pago las facturas?"),
                ("n", "Los bloques desaparecen en cuanto salen. Le das y 'ya no está disponible'."),
                ("u", "Poned la disponibilidad la noche antes, las ofertas reservadas salen sobre medianoche."),
                ("p", "Lo mejor es que elijo los bloques según el horario del cole de los críos. Por eso sigo."),
            ],
            "cancellations": [
                ("n", "Me cancelaron el bloque 20 minutos antes, cuando ya iba de camino a la estación."),
                ("n", "Me han quitado los bloques reservados de mañana sin explicación. Día perdido."),
                ("u", "Si vas a soltar un bloque hazlo con 45 minutos de antelación o te penaliza."),
            ],
            "bots_grabbers": [
                ("n", "Los bots pillan todos los bloques al segundo. Así no hay quien compita."),
                ("n", "Hay gente en la estación con apps para cazar bloques y no les pasa nada."),
            ],
            "shift_changes": [
                ("n", "Han cambiado los bloques de 3 a 4 horas y media y la tarifa casi igual."),
                ("u", "Ahora en {city} salen bloques más largos, de 4 y 5 horas."),
            ],
        },
        "delivery_operations": {
            "station_waits": [
                ("n", "{mins} minutos de espera en la estación para que me den la ruta. Sin cobrar, claro."),
                ("n", "Cola de furgos hasta la calle en la estación {code}. El bloque corriendo y yo sin moverme."),
                ("n", "Otra mañana de esperas en la estación. Una hora perdida y nadie la paga."),
                ("u", "En {code} la espera en la estación es menor si llegas 10 minutos después de la hora."),
            ],
            "route_size": [
                ("n", "{n} paradas en un bloque de 3 horas, entre dos pueblos. Imposible."),
                ("n", "Las rutas cada vez más grandes. Volví con 12 paquetes y me cayó un aviso."),
                ("p", "Ruta facilita hoy, 30 paradas en la misma urbanización. En 2 horas lista."),
            ],
            "package_volume": [
                ("n", "El coche cargado hasta el techo, no veía ni por el retrovisor. Esto no es seguro."),
                ("n", "Me dieron {n} bolsas y 20 cajas grandes para un utilitario. La mitad no cabía."),
            ],
            "addresses_access": [
                ("n", "Sin código del portal, el cliente no contesta y no hay conserje. ¿Qué hago?"),
                ("n", "La dirección en la app me llevó a la otra punta del polígono. Y el cliente quejándose."),
            ],
            "delivery_partner": [
                ("n", "Estuve en una subcontrata de reparto un mes: 10 horas al día y broncas por parar a mear."),
            ],
            "returns": [
                ("n", "Volví con devoluciones y estuve 45 minutos esperando a que alguien las recogiera."),
                ("u", "Las devoluciones van a la jaula de la puerta en {code}, se escanean allí."),
            ],
        },
        "account_status": {
            "deactivation": [
                ("n", "Me han desactivado la cuenta esta mañana después de {years} años. Un correo automático y ya."),
                ("n", "Cuenta desactivada por 'calidad de entrega'. La semana pasada tenía valoración fantástica."),
                ("n", "Desactivado porque la app dice que entregué en otra dirección. El GPS falló, no yo."),
                ("u", "Si os desactivan tenéis 10 días para mandar la apelación, no lo dejéis."),
                ("p", "¡Me han reactivado la cuenta! Dos semanas de apelación pero lo conseguí."),
            ],
            "ratings_standing": [
                ("n", "Mi valoración bajó de 'Genial' a 'Regular' por un bloque que llegó tarde por culpa de la estación."),
                ("n", "Un cliente dice 'paquete no recibido' y se me hunde la valoración. Sin forma de reclamar."),
                ("p", "De vuelta a valoración fantástica después de un mes malo."),
            ],
            "background_check": [
                ("n", "La verificación de antecedentes lleva {n} semanas 'en curso'. Y yo ya dejé el otro curro."),
            ],
            "onboarding": [
                ("n", "Me registré en {city} hace un mes y sigo en lista de espera."),
                ("u", "El alta: carnet, seguro, alta de autónomo, verificación y los vídeos. Unos 10 días."),
                ("p", "Me aceptaron en 4 días y hoy hice mi primer bloque. Nervios pero bien."),
            ],
        },
        "support": {
            "unreachable": [
                ("n", "He llamado a soporte {n} veces, 40 minutos de musiquita y se corta."),
                ("n", "No hay forma de hablar con una persona en soporte. El chat es un bot."),
                ("n", "Soporte no responde. Ni por chat, ni por correo, ni por teléfono."),
            ],
            "unhelpful": [
                ("n", "Soporte me manda la misma respuesta copiada tres veces: 'entendemos tu frustración'. Pues arreglalo."),
                ("n", "Pregunté por un pago y me contestan con un texto sobre actualizar la app. Soporte no sirve para nada."),
                ("p", "Gracias a la chica de soporte que me arregló el pago del bloque en 5 minutos. Así da gusto."),
            ],
            "slow_resolution": [
                ("n", "Abrí un ticket por un pago que falta hace {n} semanas. Sigue 'en revisión'."),
                ("n", "Soporte dijo 3 a 5 días laborables. Van tres semanas."),
            ],
        },
        "safety": {
            "accidents_injuries": [
                ("n", "Me resbalé con una caja de 20 kilos y me fastidié la espalda. Como autónomo, sin cobertura."),
                ("n", "Me dieron un golpe por detrás en mitad del bloque y la app solo preguntaba por los paquetes."),
            ],
            "weather_heat": [
                ("n", "Repartiendo con tormenta y la app diciendo 'ten cuidado'. Gracias, muy útil."),
                ("n", "Con la lluvia de hoy las carreteras eran una pista de patinaje y los bloques salieron igual."),
            ],
            "animals": [
                ("n", "Un perro suelto salió del garaje y me mordió en la pierna. El dueño: 'no hace nada'."),
                ("n", "Dos perros sueltos en la misma dirección cada semana. La app no deja avisar."),
                ("u", "Llevad spray para perros en las rutas de pueblo, en serio."),
            ],
            "harassment_crime": [
                ("n", "Un tío me siguió hasta el coche gritando por un paquete que llegó tarde. Pasé miedo."),
                ("n", "Me intentaron abrir el coche mientras estaba en la puerta. Paquetes por todas partes."),
            ],
            "vehicle_damage": [
                ("n", "Reventé una rueda en un camino de pueblo. {amt} € de mi bolsillo."),
                ("n", "Rayé el coche en una calle estrechísima y el seguro no cubre uso profesional."),
            ],
        },
        "working_conditions": {
            "workload_pressure": [
                ("n", "La presión por acabar a tiempo es brutal. Corriendo entre paradas, sin tiempo ni para comer."),
                ("n", "Cada vez más paradas y el mismo tiempo. O corres o te marcan."),
            ],
            "hours_breaks": [
                ("n", "Sin descansos y sin baños en las rutas de pueblo. Cuatro horas aguantando."),
                ("n", "Tres bloques seguidos, 12 horas en la carretera, casi sin comer."),
                ("p", "Lo bueno de esto es que decido cuándo trabajo. El viernes libre y a nadie le tengo que pedir permiso."),
            ],
            "warehouse_conditions": [
                ("n", "En el almacén hace un calor insoportable a mediodía y no hay agua."),
                ("n", "El calor en la estación hoy era inaguantable. Gente casi desmayándose en la cola."),
                ("n", "Con este calor de 40 grados y la furgo sin aire acondicionado. Un horno."),
            ],
            "treatment": [
                ("n", "Nos tratan como números. En la estación nadie saluda, solo 'escanea y fuera'."),
                ("p", "El personal nuevo de la estación {code} es majo, ayudan a cargar y dan las gracias."),
            ],
        },
        "other": {
            "": [
                ("p", "¡Hoy he llegado a las 1.000 entregas! Gracias a todos por los consejos cuando empecé."),
                ("p", "Con buen tiempo este curro se disfruta. Música, buena ruta y a comer a casa."),
                ("u", "Soy nuevo en {city}, ¿qué os hubiera gustado saber antes del primer bloque?"),
                ("u", "¿Qué coche usáis? Estoy pensando en pasarme a un híbrido."),
                ("p", "Una clienta me dejó galletas y una nota de gracias en la puerta. Me ha alegrado la semana."),
            ],
        },
    },
}

# Openers and closers by language and sentiment (n, u, p); empty strings make plain posts the most common.
OPENERS = {
    ("en", "n"): ["", "", "", "", "Ugh. ", "Rant: ", "So ", "Welp. ", "ngl ", "Day {day} of this: ", "Update: ",
                  "Unbelievable. "],
    ("en", "u"): ["", "", "", "", "PSA: ", "FYI ", "For the new folks: ", "Quick tip: ", "Heads up. "],
    ("en", "p"): ["", "", "", "Good news: ", "Small win: ", "Not complaining today: ", "Finally! "],
    ("es", "n"): ["", "", "", "", "Uf. ", "Madre mía. ", "Pues nada, ", "Vaya tela. ", "En serio, ",
                  "Otra vez igual. "],
    ("es", "u"): ["", "", "", "", "Un consejo: ", "Para los nuevos: ", "Buenas. ", "Os cuento: ", "A ver, "],
    ("es", "p"): ["", "", "", "Buenas noticias: ", "Por fin algo bueno: ", "¡Buenas! "],
}
CLOSERS = {
    ("en", "n"): ["", "", "", "", " smh", " 🙃", " Anyone else?", " Is it just me?", " So done with this.",
                  " Rant over.", " tbh", " 😤"],
    ("en", "u"): ["", "", "", "", " Hope that helps.", " Good luck out there.", " Thoughts?", " #flexlife"],
    ("en", "p"): ["", "", "", " 🙌", " Have a good one.", " lol", " #flexlife", " 😊"],
    ("es", "n"): ["", "", "", "", " 😤", " ¿A alguien más le pasa?", " Estoy harto.", " Fin del desahogo.",
                  " Qué cansancio.", " ¿Es normal?", " Manda narices."],
    ("es", "u"): ["", "", "", "", " Espero que sirva.", " Suerte.", " ¿Sabéis algo más?"],
    ("es", "p"): ["", "", "", " 😊", " jaja", " ¡Ánimo!", " xd"],
}
# Context sentences: who is talking, where, since when (they make each post read like its own).
CONTEXT = {
    "en": ["Been doing this {years} years in {city}.", "Third time this week.", "Same thing yesterday at {code}.",
           "I only do this part time on top of my day job.", "Full-time driver here, this is my only income.",
           "Started in {city} last spring.", "Morning blocks only for me.", "Had a 4.5 hour block today.",
           "This was on a Sunday of course.", "Drive a {car}, for context.", "Week {years} of this nonsense.",
           "My buddy at {code} says the same.", "Not my first rodeo.", "Doing mostly evening routes now."],
    "es": ["Llevo {years} años repartiendo en {city}.", "Tercera vez esta semana.", "Ayer lo mismo en {code}.",
           "Yo lo hago a media jornada, aparte de mi curro.", "Vivo de esto, no tengo otro ingreso.",
           "Empecé en {city} la primavera pasada.", "Yo solo cojo bloques de mañana.", "Hoy bloque de 4 horas.",
           "Y encima en domingo.", "Reparto con un {car_es}.", "Un compañero de {code} dice lo mismo.",
           "Ya no soy novato.", "Ahora hago sobre todo rutas de tarde."],
}
CARS = ["Prius", "Corolla", "Civic", "minivan", "Transit Connect", "RAV4", "Kangoo", "Berlingo"]
CARS_ES = ["Berlingo", "Kangoo", "Dacia Dokker", "Partner", "Seat León", "Ibiza viejo"]
GB_SWAPS = [("gas", "petrol"), ("miles", "miles"), ("car", "car"), ("apartment", "flat"), ("trunk", "boot"),
            ("truck", "lorry"), ("vacation", "holiday")]

# Protected topics: social posts the guard must withhold (collective action; research or press contact).
PROTECTED: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("collective_action", "We should all log off together on Friday, no blocks until they raise the base rate."),
        ("collective_action", "Is there a union for Flex drivers in {city}? Asking for a lot of us."),
        ("collective_action", "Drivers in {city} are talking about a strike next week. Who's in?"),
        ("collective_action", "Started a petition for tip transparency, link in the comments. Please sign and share."),
        ("collective_action", "Protest outside the {code} station Saturday 9am. Bring signs."),
        ("collective_action", "If we all refuse to work the Black Friday blocks they'll have to listen."),
        ("collective_action", "The Teamsters reached out about organizing drivers here. Worth a meeting?"),
        ("collective_action", "Mass log off day on the 1st. Spread the word, drivers."),
        ("research_press_contact", "A researcher from the university of {city} messaged me about my Flex experience, anyone done this?"),
        ("research_press_contact", "Got a survey link asking about our pay and hours, $25 gift card for your time. Legit?"),
        ("research_press_contact", "A journalist wants to interview drivers about deactivations. Should I talk to her?"),
        ("research_press_contact", "PhD student here looking for Flex drivers to talk to for my thesis, DM me."),
        ("research_press_contact", "Reporter from a local paper asked me about the station waits. Said yes, anonymous."),
    ],
    "es": [
        ("collective_action", "Propongo huelga de repartidores el viernes en {city}, nadie coge bloques."),
        ("collective_action", "¿Hay algún sindicato para repartidores en {city}? Hay que organizarse."),
        ("collective_action", "Manifestación el sábado frente a la estación {code} para exigir mejores tarifas."),
        ("collective_action", "He abierto una recogida de firmas por las propinas, pasadla por el grupo."),
        ("collective_action", "Desconexión masiva el lunes: todos a la vez sin conectarnos a la app."),
        ("collective_action", "Convocan huelga indefinida los riders de {city}, ¿os unís?"),
        ("research_press_contact", "Una periodista me ha escrito para una entrevista sobre las desactivaciones. ¿Le contesto?"),
        ("research_press_contact", "Me ha llegado una encuesta de la universidad de {city} sobre nuestras condiciones."),
        ("research_press_contact", "Estudiante de doctorado busca repartidores para su tesis, escribidme por privado."),
        ("research_press_contact", "Un investigador quiere hablar con riders de la app para un estudio. ¿Alguien ha participado?"),
    ],
}

# Copy-pasta groups: a base text and light edits, posted by different people over a few days.
COPYPASTA: dict[str, list[tuple[str, str, str, str]]] = {  # lang -> (category, subcategory, sentiment, text)
    "en": [
        ("pay_tips", "missing_tips", "negative",
         "PSA: screenshot your tips BEFORE you accept the block and again after. Mine were cut on {n} orders "
         "this week and support says 'tips are final'. Compare and report every single one."),
        ("account_status", "deactivation", "negative",
         "Deactivated with no warning, no reason, no human to talk to. {years} years of Fantastic standing gone "
         "overnight because an algorithm said so. Be careful out there, this can happen to any of you."),
        ("delivery_operations", "station_waits", "negative",
         "Reminder that waiting {mins} minutes at the station is UNPAID time. Log your arrival and departure "
         "and send it to support every time."),
    ],
    "es": [
        ("pay_tips", "missing_tips", "negative",
         "OJO: haced captura de las propinas ANTES de aceptar el bloque y después. A mí me han quitado propinas "
         "de {n} pedidos esta semana y soporte dice que 'son definitivas'. Reclamad todas."),
        ("support", "unhelpful", "negative",
         "Soporte no responde y cuando responde es un copia y pega. Si os pasa, guardad capturas de todo y "
         "reclamad por escrito, que por teléfono no queda constancia."),
    ],
}

# The outage spike (3-4 days before the anchor).
SPIKE: dict[str, list[str]] = {
    "en": [
        "App keeps crashing after the {ver} update. Can't even open the itinerary.",
        "Anyone else's app crashing since this morning's update? Mine closes every time I scan.",
        "{app} crashed {n} times on this route. Lost my place, packages showing as missing.",
        "Update {ver} broke everything. App freezes then crashes, can't mark anything delivered.",
        "Is the app down?? Keeps crashing on launch since the update. Stuck at the station.",
        "App crash loop after updating. Reinstalled twice, still crashing. Support says 'known issue'.",
        "Crashing every 5 minutes since {ver}. I'm {n} stops behind and it's not my fault.",
    ],
    "es": [
        "La app se cierra sola desde la actualización {ver}. No puedo ni abrir la ruta.",
        "¿A alguien más se le cierra la app desde esta mañana? A mí cada vez que escaneo.",
        "La app se cuelga y se cierra, {n} veces en esta ruta. Paquetes saliendo como perdidos.",
        "Desde la actualización la app no funciona, se cierra al abrirla. Parada en la estación.",
        "¿Está caída la app? Se cierra sola todo el rato. Soporte dice que es 'un problema conocido'.",
    ],
}
SPIKE_COPYPASTA = {
    "en": "DON'T UPDATE the app to {ver}. It crashes on the delivery screen and you can't mark packages. "
          "If you already updated, take photos of every delivery as proof.",
    "es": "NO ACTUALICÉIS la app a la {ver}. Se cierra en la pantalla de entrega y no deja marcar paquetes. "
          "Si ya actualizasteis, haced foto de cada entrega como prueba.",
}

# News: (subcategory, title, text); the text may use the same slots.
NEWS_TEMPLATES: dict[str, list[tuple[str, str, str]]] = {
    "en": [
        ("labour_news", "Delivery drivers strike in {city} over falling pay",
         "Dozens of app-based delivery drivers in {city} went on strike on {weekday}, logging off the app for the "
         "day to demand higher base pay. Parcelo said deliveries were not affected."),
        ("labour_news", "Drivers plan walkout ahead of holiday peak",
         "Couriers who deliver for Parcelo in several cities say they will stop work for 24 hours next week, "
         "citing pay cuts and long unpaid waits at stations."),
        ("labour_news", "Union files complaint on behalf of app delivery drivers",
         "A drivers' union filed a complaint alleging that Parcelo deactivated couriers without explanation. "
         "The company said it reviews every case."),
        ("investigation", "Drivers say tips went missing for months",
         "An investigation found that some delivery drivers were paid less in tips than customers had given. "
         "Parcelo said a 'technical error' affected a small number of payments and that it had refunded them."),
        ("investigation", "Automated deactivations leave drivers without income",
         "Drivers describe being deactivated by automated e-mail after years on the platform, with appeals that "
         "take weeks. Parcelo says drivers can ask for a human review."),
        ("business", "Parcelo expands same-day delivery to {n} new cities",
         "The company will add same-day delivery in {n} metro areas, including {city}, and plans to recruit "
         "thousands of independent drivers before the holidays."),
        ("business", "Parcelo reports record quarter as delivery volumes rise",
         "Quarterly revenue rose on the back of higher parcel volumes. The company said it would keep investing "
         "in its independent driver programme."),
        ("regulation", "Regulators examine how gig delivery drivers are classified",
         "State officials are reviewing whether app-based couriers should be treated as employees, a move that "
         "could change pay and benefits for thousands of drivers."),
        ("regulation", "UK court hears case on courier employment status",
         "The case will decide whether couriers who deliver through apps are workers entitled to holiday pay and "
         "the minimum wage."),
        ("investigation", "Heat wave puts delivery drivers at risk, advocates warn",
         "With temperatures above 100F, drivers say they are expected to complete routes without breaks or air "
         "conditioning. Parcelo says drivers can pause when they need to."),
        ("business", "Parcelo adds in-app safety button for drivers",
         "A new feature lets drivers report unsafe addresses and aggressive dogs. The company said it was "
         "developed with driver feedback."),
    ],
    "es": [
        ("labour_news", "Huelga de repartidores en {city} contra la bajada de tarifas",
         "Decenas de repartidores de Parcelo secundaron este {weekday_es} una huelga en {city} para reclamar "
         "tarifas más altas. La empresa asegura que el servicio funcionó con normalidad."),
        ("labour_news", "Los repartidores convocan paros durante la campaña de Navidad",
         "Los sindicatos anuncian paros de 24 horas en varias ciudades por las esperas no pagadas en las "
         "estaciones y la caída de ingresos."),
        ("investigation", "Repartidores denuncian que no reciben las propinas íntegras",
         "Varios repartidores aseguran que las propinas que dejan los clientes no llegan completas. Parcelo "
         "atribuye las diferencias a 'un error técnico' ya corregido."),
        ("investigation", "Desactivados por un algoritmo: repartidores sin ingresos de un día para otro",
         "Repartidores autónomos relatan cómo un correo automático les dejó sin cuenta tras años de trabajo. "
         "La empresa dice que todas las apelaciones se revisan."),
        ("business", "Parcelo amplía el reparto en el mismo día a {n} ciudades españolas",
         "La compañía llevará el reparto en el mismo día a {city} y otras ciudades y prevé sumar miles de "
         "repartidores autónomos antes de Navidad."),
        ("regulation", "Trabajo inspecciona la relación laboral de los repartidores de plataformas",
         "La Inspección de Trabajo revisa si los repartidores autónomos de Parcelo son en realidad asalariados, "
         "tras la entrada en vigor de la ley rider."),
        ("regulation", "Multa a una plataforma de reparto por falsos autónomos",
         "La sanción afecta a cientos de repartidores en {city} que, según la inspección, trabajaban en régimen "
         "de dependencia."),
        ("investigation", "Repartir a 40 grados: el calor dispara los riesgos para los repartidores",
         "Con temperaturas extremas, los repartidores denuncian jornadas sin pausas ni agua. Parcelo afirma que "
         "pueden detener la actividad cuando lo necesiten."),
    ],
}
NEWS_EXTRA = {
    "en": [
        "\"We just want to be paid for the time we actually work,\" said one driver in {city}.",
        "Drivers are independent contractors and are paid per block rather than per hour.",
        "The company did not respond to a request for comment.",
        "Parcelo said in a statement that driver earnings averaged more than {cur}20 an hour.",
        "Several drivers described waits of up to an hour at pick-up stations before their routes began.",
        "The programme has grown quickly since it launched in {city}.",
        "A spokesperson said the company \"values the feedback of delivery partners\".",
    ],
    "es": [
        "\"Solo queremos que nos paguen el tiempo que trabajamos\", explica un repartidor de {city}.",
        "Los repartidores trabajan como autónomos y cobran por bloque, no por hora.",
        "La empresa no ha respondido a las preguntas de este periódico.",
        "Parcelo asegura en un comunicado que los ingresos medios superan los 15 euros por hora.",
        "Varios repartidores relatan esperas de hasta una hora en las estaciones antes de empezar la ruta.",
        "Un portavoz de la compañía afirma que \"escucha a los repartidores\".",
    ],
}
SPIKE_NEWS = {
    "en": ("investigation", "Parcelo driver app outage strands couriers",
           "A faulty update to Parcelo's driver app caused it to crash repeatedly on {weekday}, leaving couriers "
           "unable to mark deliveries. The company said a fix was being rolled out."),
    "es": ("investigation", "Una caída de la app de Parcelo deja a los repartidores sin poder trabajar",
           "Una actualización defectuosa hizo que la app de repartidores se cerrara una y otra vez este "
           "{weekday_es}. La empresa asegura que ya trabaja en una solución."),
}
PUBLISHERS = {
    "en": [("US", "https://www.dailyledger.example/business/"), ("US", "https://metrowire.example/news/"),
           ("US", "https://www.thecourierpost.example/local/"), ("GB", "https://www.northernstar.example/news/"),
           ("GB", "https://eveningherald.example/business/")],
    "es": [("ES", "https://www.eldiariodelreparto.example/economia/"),
           ("ES", "https://www.noticiasdehoy.example/sociedad/"),
           ("ES", "https://lagacetaeconomica.example/empresas/")],
}
WEEKDAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WEEKDAYS_ES = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"]

# --------------------------------------------------------------------------------------------------------------
# Generation


@dataclass
class Draft:
    source: Src
    country: str
    when: datetime
    text: str
    title: str | None = None
    url: str | None = None
    visibility: str | None = None
    category: str = "other"
    subcategory: str = ""
    sentiment: str = "neutral"
    protected: str | None = None
    group: str | None = None  # copy-pasta group
    author: str | None = None


class Generator:
    """All randomness flows from one ``random.Random(seed)``; iteration orders are fixed (lists, not sets)."""

    def __init__(self, seed: int = SEED, anchor: datetime = ANCHOR) -> None:
        self.rng = random.Random(seed)
        self.anchor = anchor
        self.days = [(anchor - timedelta(days=k)).replace(hour=0, minute=0, second=0) for k in range(DAYS)]
        self.day_weights = [WEEKDAY_WEIGHT[d.weekday()] for d in self.days]
        self.authors: dict[str, list[str]] = {}

    # -- slots --------------------------------------------------------------------------------------------
    def when(self, day: datetime | None = None) -> datetime:
        rng = self.rng
        if day is None:
            day = rng.choices(self.days, weights=self.day_weights)[0]
        latest = self.anchor if day.date() == self.anchor.date() else None
        for _ in range(20):
            t = day + timedelta(hours=rng.choices(range(24), weights=HOUR_WEIGHT)[0],
                                minutes=rng.randrange(60), seconds=rng.randrange(60))
            if latest is None or t <= latest:
                return t
        return day

    def fill(self, template: str, lang: str, country: str, when: datetime,
             fixed: dict[str, Any] | None = None) -> str:
        """``template`` with its slots filled; ``fixed`` pins slots shared by the parts of one item."""
        rng = self.rng
        cur = {"US": "$", "GB": "£"}.get(country, "€")
        amt = rng.choice([48, 54, 60, 63, 66, 72, 75, 81, 90]) if lang == "en" else rng.choice([28, 32, 36, 40, 45])
        station = "depot" if country == "GB" and rng.random() < 0.6 else rng.choice(["station", "station", "warehouse"])
        values = {
            "app": rng.choice(APP_NAME_EN if lang == "en" else APP_NAME_ES),
            "cur": cur,
            "amt": amt,
            "tip": rng.choice([3, 5, 8, 10, 12, 15, 20]),
            "net": rng.choice([9, 11, 12, 13, 14]),
            "big": rng.choice([380, 420, 455, 510, 560]),
            "n": rng.randint(2, 9),
            "hours": rng.choice([3, 3.5, 4, 4.5, 5]),
            "mins": rng.choice([30, 40, 45, 50, 60, 75, 90]),
            "years": rng.choice([2, 3, 4, 5, 6]),
            "city": rng.choice(CITIES[country]),
            "station": station,
            "code": rng.choice(STATION_CODES[country]),
            "ver": rng.choice(VERSIONS),
            "day": rng.randint(2, 9),
            "car": rng.choice(CARS),
            "car_es": rng.choice(CARS_ES),
            "weekday": WEEKDAYS_EN[when.weekday()],
            "weekday_es": WEEKDAYS_ES[when.weekday()],
        }
        if "{n} stops" in template or "{n} paradas" in template:
            values["n"] = rng.choice([55, 60, 65, 70, 80, 90])
        if fixed:
            values.update(fixed)
        text = template.format(**values)
        if country == "GB":
            for us, gb in GB_SWAPS:
                text = re.sub(rf"\b{us}\b", gb, text)
        return text

    def author_for(self, source: Src) -> str:
        pool = self.authors.setdefault(source.name, [])
        rng = self.rng
        if pool and rng.random() < 0.45:  # regulars post often
            return pool[min(int(rng.expovariate(0.08)), len(pool) - 1)]
        if source.lang == "es":
            handle = f"{rng.choice(FIRST_ES)}_{rng.choice(SECOND_ES)}{rng.randint(1, 99)}"
        elif rng.random() < 0.3:
            handle = f"driver_{rng.randint(1000, 9999)}"
        else:
            handle = f"{rng.choice(FIRST_PART)}{rng.choice(SECOND_PART)}_{rng.randint(1, 999)}"
        pool.append(handle)
        return handle

    def country_for(self, source: Src) -> str:
        if source.name == "reddit-flexdrivers":
            return "US"
        if source.name == "driver-forum":
            return "GB"
        if source.name == "news-en":
            return "US" if self.rng.random() < 0.6 else "GB"
        return "ES"

    # -- styling ------------------------------------------------------------------------------------------
    def style(self, text: str, lang: str, sentiment: str = "n", *, typos: bool = True) -> str:
        rng = self.rng
        opener = rng.choice(OPENERS[lang, sentiment]).replace("{day}", str(rng.randint(2, 9)))
        closer = rng.choice(CLOSERS[lang, sentiment])
        if opener and text[:1].isupper() and not text[:2].isupper() and opener.strip()[-1:] not in ".:!?":
            text = text[0].lower() + text[1:]
        text = opener + text + closer
        r = rng.random() if typos else 1.0
        if r < 0.08:
            text = text.lower()
        elif r < 0.16:
            text = self.typo(text)
        elif r < 0.20 and lang == "es":
            text = (text.replace("á", "a").replace("é", "e").replace("í", "i").replace("ó", "o")
                    .replace("ú", "u").replace("¿", "").replace(" que ", " q ").replace("porque", "xq"))
        elif r < 0.22:
            text = text.rstrip(".") + "!!"
        return text

    def typo(self, text: str) -> str:
        words = text.split(" ")
        idx = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
        if not idx:
            return text
        i = self.rng.choice(idx)
        w = words[i]
        j = self.rng.randrange(1, len(w) - 2)
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if self.rng.random() < 0.6 else w[:j] + w[j + 1:]
        return " ".join(words)

    def pii(self, text: str, lang: str, country: str, author: str) -> str:
        rng = self.rng
        name = rng.choice(["mike", "sarah", "jdelivers", "carlos", "lucia", "tom", "ana"])
        choices_en = [
            f" Email me at {name}.{rng.randint(10, 99)}@example.com if you know a fix.",
            f" Text me {rng.choice(US_PHONES if country == 'US' else UK_PHONES)} if you're at {rng.choice(STATION_CODES[country])} too.",
            f" @{rng.choice(FIRST_PART)}{rng.choice(SECOND_PART)}_{rng.randint(1, 99)} had the same thing last week.",
            f" u/{rng.choice(FIRST_PART)}_{rng.choice(SECOND_PART)}{rng.randint(1, 99)} posted about this too.",
            f" Follow me for updates: https://twitter.com/{author}",
            f" More on my page https://www.instagram.com/{author}/",
            f" (this is {author} btw, same name on the other forum)",
        ]
        choices_es = [
            f" Escribidme a {name}.reparto{rng.randint(10, 99)}@example.es si sabéis algo.",
            f" Llamadme al {rng.choice(ES_PHONES)} si estáis en la estación {rng.choice(STATION_CODES['ES'])}.",
            f" @{rng.choice(FIRST_ES)}_{rng.choice(SECOND_ES)} le pasó lo mismo ayer.",
            f" Mi perfil: https://www.facebook.com/{author}",
            f" Más en https://www.tiktok.com/@{author}",
        ]
        return text + rng.choice(choices_en if lang == "en" else choices_es)

    # -- item kinds ---------------------------------------------------------------------------------------
    def social(self, source: Src, *, day: datetime | None = None) -> Draft:
        rng = self.rng
        lang = source.lang
        category = rng.choices(list(CATEGORY_WEIGHT), weights=list(CATEGORY_WEIGHT.values()))[0]
        subs = SOCIAL_TEMPLATES[lang][category]
        want = SHORT[rng.choices(list(SENTIMENT_WEIGHT), weights=list(SENTIMENT_WEIGHT.values()))[0]]
        # Pick the subcategory first (uniformly), then a template in the wanted sentiment: from this
        # subcategory if it has one, else from another subcategory of the category, else any.
        sub = rng.choice(list(subs))
        if not any(t[0] == want for t in subs[sub]):
            with_want = [k for k, v in subs.items() if any(t[0] == want for t in v)]
            if with_want:
                sub = rng.choice(with_want)
        options = [t for t in subs[sub] if t[0] == want] or subs[sub]
        sent, template = rng.choice(options)
        country = self.country_for(source)
        when = self.when(day)
        fixed = {"city": rng.choice(CITIES[country])}
        text = self.fill(template, lang, country, when, fixed)
        if rng.random() < 0.25:  # a second sentence from the same subcategory
            extra = [t for t in subs[sub] if t[1] != template and t[0] == sent]
            if extra:
                text += " " + self.fill(rng.choice(extra)[1], lang, country, when, fixed)
        if rng.random() < 0.55:  # who, where, since when
            context = self.fill(rng.choice(CONTEXT[lang]), lang, country, when, fixed)
            text = f"{context} {text}" if rng.random() < 0.5 else f"{text} {context}"
        text = self.style(text, lang, sent)
        return Draft(source, country, when, text, category=category, subcategory=sub,
                     sentiment={"n": "negative", "u": "neutral", "p": "positive"}[sent])

    def protected(self, source: Src) -> Draft:
        topic, template = self.rng.choice(PROTECTED[source.lang])
        country = self.country_for(source)
        when = self.when()
        text = self.style(self.fill(template, source.lang, country, when), source.lang, "u", typos=False)
        return Draft(source, country, when, text, category="other", sentiment="neutral", protected=topic)

    def spike(self, source: Src, day: datetime, copypasta: bool) -> Draft:
        rng = self.rng
        country = self.country_for(source)
        when = self.when(day)
        if copypasta:
            text = self.fill(SPIKE_COPYPASTA[source.lang], source.lang, country, when)
            text = self.edit(text, source.lang)
        else:
            text = self.style(self.fill(rng.choice(SPIKE[source.lang]), source.lang, country, when), source.lang, "n")
        return Draft(source, country, when, text, category="app_issue", subcategory="crash_freeze",
                     sentiment="negative", group="outage" if copypasta else None)

    def edit(self, text: str, lang: str) -> str:
        """A light edit of a copy-pasta: a prefix, a suffix, case or punctuation changes."""
        rng = self.rng
        pre = rng.choice(["", "", "", "Copying this from another group: ", "This!! ", "+1 ",
                          "Reposting because it matters: "] if lang == "en" else
                         ["", "", "", "Lo copio de otro foro: ", "¡Esto! ", "+1 ", "Lo repito porque es importante: "])
        post = rng.choice(["", "", "", " Share it.", " 🙏", " Please read.", " (copied)"] if lang == "en" else
                          ["", "", "", " Compartidlo.", " 🙏", " Leedlo.", " (copiado)"])
        r = rng.random()
        if r < 0.15:
            text = text.lower()
        elif r < 0.3:
            text = text.replace(". ", "... ", 1)
        elif r < 0.4:
            text = self.typo(text)
        return pre + text + post

    def copypasta(self, source: Src, base: tuple[str, str, str, str], center: datetime, group: str) -> Draft:
        rng = self.rng
        category, sub, sentiment, template = base
        country = self.country_for(source)
        offset = max(-10, min(10, round(rng.gauss(0, 3))))
        day = center + timedelta(days=offset)
        if day > self.anchor or day < self.days[-1]:
            day = center
        when = self.when(day)
        text = self.edit(self.fill(template, source.lang, country, when), source.lang)
        return Draft(source, country, when, text, category=category, subcategory=sub, sentiment=sentiment,
                     group=group)

    def news(self, source: Src, *, day: datetime | None = None, spike: bool = False) -> Draft:
        rng = self.rng
        lang = source.lang
        sub, title_t, text_t = SPIKE_NEWS[lang] if spike else rng.choice(NEWS_TEMPLATES[lang])
        publishers = PUBLISHERS[lang]
        if "UK " in title_t:
            publishers = [p for p in publishers if p[0] == "GB"]
        elif "100F" in text_t:
            publishers = [p for p in publishers if p[0] == "US"]
        country, base = rng.choice(publishers)
        when = self.when(day)
        fixed = {"city": rng.choice(CITIES[country]), "n": rng.randint(3, 12)}
        title = self.fill(title_t, lang, country, when, fixed)
        text = self.fill(text_t, lang, country, when, fixed)
        extras = rng.sample(NEWS_EXTRA[lang], k=rng.choice([0, 1, 1, 2]))
        if extras:
            text += " " + " ".join(self.fill(x, lang, country, when, fixed) for x in extras)
        if rng.random() < 0.4:
            text = f"{str(fixed['city']).upper()} — {text}"
        slug = re.sub(r"[^a-z0-9]+", "-", _ascii(title.lower())).strip("-")[:70]
        url = f"{base}{when:%Y/%m/%d}/{slug}-{rng.randint(10000, 99999)}"
        category = {"labour_news": "media_coverage", "business": "media_coverage", "regulation": "media_coverage",
                    "investigation": "media_coverage"}[sub]
        sentiment = "neutral" if sub in ("business", "regulation", "labour_news") else "negative"
        if "safety button" in title:
            sentiment = "positive"
        return Draft(source, country, when, text, title=title, url=url, category=category, subcategory=sub,
                     sentiment=sentiment)


def _ascii(s: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def _counts(n: int) -> dict[str, int]:
    """How many items of each kind for a sample of ``n``."""
    news = round(n * 0.10)
    private = round(n * 0.03)
    social = n - news
    protected = round(social * 0.05)
    spike = round(n * 0.02)
    copypasta = round(n * 0.07)
    regular = n - news - private - protected - spike - copypasta
    return {"news": news, "private": private, "protected": protected, "spike": spike, "copypasta": copypasta,
            "regular": regular}


def _pick_source(rng: random.Random, pool: Sequence[Src]) -> Src:
    return rng.choices(list(pool), weights=[s.share for s in pool])[0]


def generate(n: int = DEFAULT_N, *, seed: int = SEED, anchor: datetime = ANCHOR) -> list[dict[str, Any]]:
    """``n`` synthetic posts as dicts in openear's JSON Lines import format, oldest first."""
    g = Generator(seed, anchor)
    rng = g.rng
    counts = _counts(n)
    drafts: list[Draft] = []

    for _ in range(counts["regular"]):
        drafts.append(g.social(_pick_source(rng, SOCIAL)))
    for _ in range(counts["protected"]):
        drafts.append(g.protected(_pick_source(rng, SOCIAL)))
    for _ in range(counts["private"]):
        d = g.social(_pick_source(rng, SOCIAL))
        d.visibility = rng.choice(["private", "private", "closed", "secret"])
        drafts.append(d)

    # Near-duplicate groups, each centred on a day, 10-40 posts for the default size.
    bases = [(lang, b) for lang in ("en", "es") for b in COPYPASTA[lang]]
    left = counts["copypasta"]
    gi = 0
    while left > 0:
        lang, base = bases[gi % len(bases)]
        size = rng.randint(10, 40)
        if left - size < 10:  # no group smaller than 10
            size = left
        center = g.days[rng.randrange(6, DAYS - 6)]
        pool = [s for s in SOCIAL if s.lang == lang]
        for _ in range(size):
            drafts.append(g.copypasta(_pick_source(rng, pool), base, center, f"copypasta-{gi + 1}"))
        left -= size
        gi += 1

    # The outage: 3-4 days before the anchor, with a tail on the day after; a third is one copy-pasta.
    spike_days = [(g.days[4], 0.45), (g.days[3], 0.40), (g.days[2], 0.15)]
    for day, share in spike_days:
        k = round(counts["spike"] * share)
        for i in range(k):
            drafts.append(g.spike(_pick_source(rng, SOCIAL), day, copypasta=i % 3 == 0))

    # News: a couple about the outage on the spike days, the rest spread out.
    news_spike = min(counts["news"], max(2, round(counts["news"] * 0.02)))
    for i in range(news_spike):
        drafts.append(g.news(NEWS[i % 2], day=spike_days[i % 2][0], spike=True))
    for _ in range(counts["news"] - news_spike):
        drafts.append(g.news(_pick_source(rng, NEWS)))

    # Personal data and hostile strings in some social texts (not in news).
    # Only in posts the guard will store, so the scrubbing and the escaping are visible in the demo.
    for d in drafts:
        if d.source.kind == "social":
            d.author = g.author_for(d.source)
    stored_idx = [i for i, d in enumerate(drafts)
                  if d.source.kind == "social" and d.protected is None and d.visibility is None]
    for i in rng.sample(stored_idx, k=round(len(stored_idx) * 0.08)):
        d = drafts[i]
        d.text = g.pii(d.text, d.source.lang, d.country, d.author or "driver_0000")
    hostile_n = max(2 * len(HOSTILE), round(len(stored_idx) * 0.01))
    for k, i in enumerate(rng.sample(stored_idx, k=hostile_n)):
        d = drafts[i]
        d.text = d.text + " " + HOSTILE[k % len(HOSTILE)]

    drafts.sort(key=lambda d: (d.when, d.source.name, d.text))
    out: list[dict[str, Any]] = []
    seq: dict[str, int] = {}
    for d in drafts:
        seq[d.source.name] = seq.get(d.source.name, 0) + 1
        out.append(_row(g, d, seq[d.source.name]))
    return out


_PREFIX = {"reddit-flexdrivers": "t3_", "driver-forum": "df-", "foro-repartidores": "fr-", "news-en": "news-",
           "noticias-es": "not-"}


def _row(g: Generator, d: Draft, seq: int) -> dict[str, Any]:
    rng = g.rng
    src = d.source
    if src.name == "reddit-flexdrivers":
        ext = _base36(46_000_000 + seq * 7919)
        ident = f"t3_{ext}"
        slug = re.sub(r"[^a-z0-9]+", "_", _ascii(d.text.lower()))[:40].strip("_")
        if rng.random() < 0.05:  # a link that names the author: the guard must drop it
            url = f"https://www.reddit.com/user/{d.author}/comments/{ext}/{slug}/"
        else:
            url = f"https://www.reddit.com/r/flexdrivers/comments/{ext}/{slug}/"
    elif src.name == "driver-forum":
        ident = f"df-{100000 + seq}"
        url = f"https://forum.driverhub.example/t/{100000 + seq}"
    elif src.name == "foro-repartidores":
        ident = f"fr-{50000 + seq}"
        url = f"https://foro-repartidores.example/hilo/{50000 + seq}"
    else:
        ident = f"{_PREFIX[src.name]}{seq:06d}"
        url = d.url or ""
    row: dict[str, Any] = {
        "id": ident,
        "text": d.text,
        "created_at": d.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if src.kind == "social":
        row["author"] = d.author
    row["url"] = url
    if d.title is not None:
        row["title"] = d.title
    row["kind"] = src.kind
    row["lang"] = src.lang
    row["country"] = d.country
    row["visibility"] = d.visibility or src.visibility
    row["source"] = src.name
    row["synthetic"] = True
    # Ground truth for evaluation (the importer ignores unknown keys).
    truth: dict[str, Any] = {"category": d.category, "subcategory": d.subcategory, "sentiment": d.sentiment}
    if d.protected:
        truth = {"protected": d.protected}
    if d.group:
        truth["group"] = d.group
    row["synthetic_truth"] = truth
    return row


def _base36(x: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while x:
        x, r = divmod(x, 36)
        out = digits[r] + out
    return out or "0"


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """Write ``rows`` as UTF-8 JSON Lines with ``\\n`` endings; returns the number of lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    k = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(", ", ": ")) + "\n")
            k += 1
    return k


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="number of posts (default %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (default %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file (default: the bundled sample)")
    args = parser.parse_args(argv)
    if args.n < 100:
        parser.error("--n: at least 100")
    k = write_jsonl(generate(args.n, seed=args.seed), args.out)
    print(f"wrote {k} synthetic posts to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
