FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .
COPY . .
# Collecting static files needs settings but no real secret; this value is never used at run time.
RUN DEBUG=0 SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

RUN useradd --create-home bizdevops && mkdir -p var && chown -R bizdevops var
USER bizdevops
EXPOSE 8000
CMD ["gunicorn", "bizdevops.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
