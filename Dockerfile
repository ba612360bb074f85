# The portal's image: web (gunicorn), Celery worker and beat all run from it; see docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 MLOPS_DATA_DIR=/data
WORKDIR /app
# Pango and a font for WeasyPrint, which renders the promotions' evidence reports as PDF.
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput -v 0 --ignore redoc
ENV DJANGO_STATIC_ROOT=/app/staticfiles
RUN useradd --create-home portal && mkdir -p /data && chown portal /data
USER portal
EXPOSE 8000
CMD ["gunicorn", "mlopsportal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
