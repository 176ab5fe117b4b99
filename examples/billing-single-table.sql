-- Postgres side of examples/billing-single-table.yaml.
CREATE SCHEMA IF NOT EXISTS billing;

CREATE TABLE IF NOT EXISTS billing.customer (
    customer_id   bigint PRIMARY KEY,
    first_name    text NOT NULL,
    last_name     text NOT NULL,
    email         text,
    tax_id        text,
    date_of_birth date,
    preferences   jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS billing.billing_account (
    ban            bigint PRIMARY KEY,  -- billing account number
    customer_id    bigint NOT NULL REFERENCES billing.customer,
    account_type   text NOT NULL,       -- I individual, B business
    account_status text NOT NULL,       -- O open, S suspended, C closed
    cycle_code     integer NOT NULL,
    open_date      date NOT NULL,
    credit_limit   numeric(12,2),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS billing.subscriber (
    ban               bigint NOT NULL REFERENCES billing.billing_account,
    subscriber_no     text NOT NULL,    -- the phone number
    sub_status        text NOT NULL,
    price_plan        text NOT NULL,
    activation_date   date NOT NULL,
    deactivation_date date,
    features          text[],
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ban, subscriber_no)
);

CREATE TABLE IF NOT EXISTS billing.service_agreement (
    ban             bigint NOT NULL,
    subscriber_no   text NOT NULL,
    soc             text NOT NULL,      -- service offering code
    effective_date  date NOT NULL,
    expiration_date date,
    monthly_rate    numeric(10,2) NOT NULL,
    parameters      jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ban, subscriber_no, soc, effective_date),
    FOREIGN KEY (ban, subscriber_no) REFERENCES billing.subscriber
);

CREATE TABLE IF NOT EXISTS billing.bill (
    ban              bigint NOT NULL REFERENCES billing.billing_account,
    bill_seq_no      integer NOT NULL,
    cycle_code       integer NOT NULL,
    cycle_close_date date NOT NULL,
    due_date         date NOT NULL,
    total_due        numeric(12,2) NOT NULL,
    bill_status      text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ban, bill_seq_no)
);

CREATE TABLE IF NOT EXISTS billing.charge (
    ban           bigint NOT NULL REFERENCES billing.billing_account,
    charge_seq    bigint NOT NULL,
    activity_num  integer NOT NULL,
    bill_seq_no   integer,              -- NULL until billed
    subscriber_no text,                 -- NULL for account-level charges
    charge_code   text NOT NULL,
    amount        numeric(12,2) NOT NULL,
    tax_amount    numeric(12,2) NOT NULL DEFAULT 0,
    description   text,
    charge_date   date NOT NULL,
    PRIMARY KEY (ban, charge_seq, activity_num)
);
