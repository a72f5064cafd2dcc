"""The portal's forms (Flask-WTF: each carries its CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

ACCOUNT_KINDS = [SelectChoice("subscriber", "Subscriber (your dial-in or PPPoE login)"),
                 SelectChoice("staff", "ISP operator or administrator")]


class LoginForm(FlaskForm):
    kind = RadioField("I am", choices=ACCOUNT_KINDS, default="subscriber",
                      validators=[InputRequired()])
    name = StringField("User name", validators=[InputRequired(), Length(max=253)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=253)])


class ChooseIspForm(FlaskForm):
    """The subscriber's ISP: the choices are the ISPs that can serve it, set per request,
    and "" for the profile's (no choice of one's own)."""
    isp = RadioField("ISP", choices=[], validate_choice=True)
