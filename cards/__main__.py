from cards.cli import app

app(prog_name="model-release card")
