"""A Flask application for the end-to-end tests."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from flask"


@app.get("/user/<name>")
def user(name):
    return jsonify(name=name, q=request.args.get("q", ""))


@app.post("/api/sum")
def api_sum():
    data = request.get_json()
    numbers = data["numbers"]
    return jsonify(n=len(numbers), sum=sum(numbers))


@app.post("/form")
def form():
    return "a=%s b=%s" % (request.form["a"], request.form["b"])
